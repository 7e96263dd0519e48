"""What a runner pod gets from the operator, and where: env var names, paths, exit codes. Pure.

The operator renders the Job with these (``datapipelines.operator.jobs``); the runner reads them
(``datapipelines.runner``). docs/contracts.md ("Operator → runner pod") describes them.
"""

from __future__ import annotations

RUNNER_CONTAINER = "runner"
RUNNER_UID = 10001

#: Writable working directory (dlt's pipelines dir, HOME): an emptyDir.
DATA_DIR = "/var/lib/datapipelines"
#: The warehouse volume (a PersistentVolumeClaim of the chart): DuckDB files that must outlive
#: the pod live here. Connections without a destination load into WAREHOUSE_DEFAULT_FILE.
WAREHOUSE_DIR = f"{DATA_DIR}/warehouse"
WAREHOUSE_DEFAULT_FILE = f"{WAREHOUSE_DIR}/warehouse.duckdb"
#: ``<SECRETS_DIR>/<secret name>/<key>``: one read-only file per referenced Secret key.
SECRETS_DIR = "/var/run/datapipelines/secrets"
TMP_DIR = "/tmp"

#: Directories a connection's own volumes may not be mounted on (or under, see
#: SYSTEM_PREFIXES): the pod's own mounts and the image's system paths.
RESERVED_DIRS = ("/", TMP_DIR, DATA_DIR, WAREHOUSE_DIR, SECRETS_DIR)
SYSTEM_PREFIXES = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/opt",
    "/run",
    "/var/run",
    DATA_DIR,
)

ENV_CONNECTION_NAME = "DATAPIPELINES_CONNECTION_NAME"
ENV_CONNECTION_SPEC = "DATAPIPELINES_CONNECTION_SPEC"
ENV_RUN_NAME = "DATAPIPELINES_RUN_NAME"
ENV_NAMESPACE = "DATAPIPELINES_NAMESPACE"
ENV_SECRETS_DIR = "DATAPIPELINES_SECRETS_DIR"
ENV_DATA_DIR = "DATAPIPELINES_DATA_DIR"
ENV_KUBE_API = "DATAPIPELINES_KUBE_API"
ENV_LOG_FORMAT = "DATAPIPELINES_LOG_FORMAT"
ENV_POD_NAME = "DATAPIPELINES_POD_NAME"
#: Every variable the operator sets; a connection's runner.env may not set these.
RESERVED_ENV_PREFIX = "DATAPIPELINES_"

TERMINATION_LOG = "/dev/termination-log"
#: The kubelet keeps at most 4 KiB of a container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096

EXIT_OK = 0
#: A failure a retry may fix (source or destination unreachable, …): the Job retries.
EXIT_SYNC_FAILED = 1
#: Bad configuration: retrying cannot help, the Job fails at once.
EXIT_BAD_CONFIG = 2
#: The data broke the connection's schema contract (a frozen table/column/type): the Job fails
#: at once, naming the table and column.
EXIT_CONTRACT_VIOLATION = 3
#: Exit codes after which the Job must not retry (its podFailurePolicy FailJob rule).
EXIT_NO_RETRY = (EXIT_BAD_CONFIG, EXIT_CONTRACT_VIOLATION)


def is_mountable(directory: str) -> bool:
    """Whether a connection's own volume may be mounted at ``directory`` (absolute, normalised)."""
    if not directory.startswith("/") or directory in RESERVED_DIRS:
        return False
    return not any(directory == p or directory.startswith(p + "/") for p in SYSTEM_PREFIXES)


def dirname(path: str) -> str:
    """POSIX dirname of an absolute path ('' for a file at the root)."""
    return path[: path.rfind("/")]


def mountable_cel(expr: str) -> str:
    """The CEL twin of :func:`is_mountable` for the directory expression ``expr``."""
    reserved = ", ".join(f"'{d}'" for d in RESERVED_DIRS)
    prefixes = ", ".join(f"'{p}'" for p in SYSTEM_PREFIXES)
    return (
        f"{expr}.startsWith('/') && !({expr} in [{reserved}]) && "
        f"[{prefixes}].all(p, {expr} != p && !{expr}.startsWith(p + '/'))"
    )
