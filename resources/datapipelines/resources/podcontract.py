"""What a runner pod gets from the operator, and where: env var names, paths, exit codes. Pure.

The operator renders the Job with these (``datapipelines.operator.jobs``); the runner reads them
(``datapipelines.runner``). docs/contracts.md ("Operator → runner pod") describes them.
"""

from __future__ import annotations

import posixpath
import re

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
ENV_RUN_OPTIONS = "DATAPIPELINES_RUN_OPTIONS"  # the run's options (RunOptions JSON), when any
#: Every variable the operator sets; a connection's runner.env may not set these.
RESERVED_ENV_PREFIX = "DATAPIPELINES_"

#: What a connection's ``runner.env`` may name: an allow-list, not a deny-list. An interpreter,
#: its loader and its libraries read dozens of variables that load code or files of the
#: caller's choosing (``PYTHONPATH``, ``PYTHONSTARTUP``, ``LD_PRELOAD``, ``OPENSSL_CONF``,
#: ``GCONV_PATH``, ``BASH_ENV``, ``SSL_CERT_FILE``, …) and new ones appear with every release;
#: a deny-list misses the next one. A sync needs only dlt's performance knobs, proxies, a time
#: zone and the runner's own ``RUNNER__*`` switches.
#: docs/security.md ("No code of the author's runs") has the table.
ENV_ALLOWED_PATTERN = (
    r"^((NORMALIZE|LOAD|EXTRACT|DATA_WRITER|RUNNER)__[A-Z0-9_]+"
    r"|RUNTIME__(LOG_LEVEL|REQUEST_[A-Z0-9_]+)"
    r"|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy|TZ)$"
)
ENV_RULE = (
    "runner.env may set only dlt's NORMALIZE__*, LOAD__*, EXTRACT__*, DATA_WRITER__*, "
    "RUNTIME__LOG_LEVEL and RUNTIME__REQUEST_*, the proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), "
    "TZ and the runner's RUNNER__* switches: interpreter and loader variables (PYTHON*, LD_*, "
    "…) would run code of the connection's author"
)
#: What a path a connection gives must look like (DuckDB file, filesystem bucket directory).
PATH_RULE = "an absolute, normalised path: no '..' or '.' segments, no '//', no trailing '/'"

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


def env_name_allowed(name: str) -> bool:
    """Whether runner.env may set the variable ``name`` (:data:`ENV_ALLOWED_PATTERN`)."""
    return re.fullmatch(ENV_ALLOWED_PATTERN, name) is not None


def env_allowed_cel(expr: str) -> str:
    """The CEL twin of :func:`env_name_allowed` for the name expression ``expr``."""
    return f"{expr}.matches('{ENV_ALLOWED_PATTERN}')"


def is_normal_path(path: str) -> bool:
    """Whether ``path`` is absolute and normalised: what it says is what the kernel opens.

    ``/data/../etc``, ``//etc``, ``/./opt``, ``/data/`` are not: each names a directory other
    than the one a string comparison (a reserved-directory rule, a lock key) sees.
    """
    return path.startswith("/") and not path.startswith("//") and posixpath.normpath(path) == path


def normal_path_cel(expr: str) -> str:
    """The CEL twin of :func:`is_normal_path` for the path expression ``expr``."""
    return (
        f"{expr}.startsWith('/') && !{expr}.contains('//') && !{expr}.contains('/./') && "
        f"!{expr}.contains('/../') && !{expr}.endsWith('/.') && !{expr}.endsWith('/..') && "
        f"({expr} == '/' || !{expr}.endsWith('/'))"
    )


def is_mountable(directory: str) -> bool:
    """Whether a connection's own volume may be mounted at ``directory`` (absolute, normalised,
    not a reserved or system directory nor under one)."""
    if not is_normal_path(directory) or directory in RESERVED_DIRS:
        return False
    return not any(directory == p or directory.startswith(p + "/") for p in SYSTEM_PREFIXES)


def bucket_dir(url: str) -> str | None:
    """Local directory of a filesystem source (``file:///x`` or ``/x``) as written, else None
    (a remote bucket URL)."""
    path = url.removeprefix("file://")
    return path if path.startswith("/") else None


def dirname(path: str) -> str:
    """POSIX dirname of an absolute path ('' for a file at the root)."""
    return path[: path.rfind("/")]


def mountable_cel(expr: str) -> str:
    """The CEL twin of :func:`is_mountable` for the directory expression ``expr``."""
    reserved = ", ".join(f"'{d}'" for d in RESERVED_DIRS)
    prefixes = ", ".join(f"'{p}'" for p in SYSTEM_PREFIXES)
    return (
        f"{normal_path_cel(expr)} && !({expr} in [{reserved}]) && "
        f"[{prefixes}].all(p, {expr} != p && !{expr}.startsWith(p + '/'))"
    )
