"""Where the runner reads its connection spec and its pod's settings.

The spec model is the shared contract's (`datapipelines.resources.connection.ConnectionSpec`,
from which the CRD is generated): what the apiserver admits is what the runner parses. It
comes from `$DATAPIPELINES_CONNECTION_SPEC` (JSON, as the operator renders it) or from
`--config FILE` (YAML/JSON: a whole PipelineConnection manifest or just its spec).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import ConnectionSpec
from datapipelines.resources.incluster import SERVICE_ACCOUNT_DIR
from datapipelines.resources.meta import validation_problems

from .errors import ConfigError

DEFAULT_DATA_DIR = pod.DATA_DIR
DEFAULT_TERMINATION_LOG = pod.TERMINATION_LOG
DEFAULT_SA_DIR = SERVICE_ACCOUNT_DIR


@dataclass(frozen=True)
class RunnerEnv:
    """What the operator hands the pod (docs/contracts.md, "Operator → runner pod")."""

    connection_name: str | None = None
    run_name: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    kube_api: str | None = None
    service_account_dir: str = DEFAULT_SA_DIR
    termination_log: str = DEFAULT_TERMINATION_LOG

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunnerEnv:
        env: Mapping[str, str] = os.environ if environ is None else environ
        return cls(
            connection_name=env.get(pod.ENV_CONNECTION_NAME) or None,
            run_name=env.get(pod.ENV_RUN_NAME) or None,
            namespace=env.get(pod.ENV_NAMESPACE) or None,
            pod_name=env.get(pod.ENV_POD_NAME) or None,
            data_dir=env.get(pod.ENV_DATA_DIR) or DEFAULT_DATA_DIR,
            kube_api=env.get(pod.ENV_KUBE_API) or None,
            service_account_dir=env.get("DATAPIPELINES_SERVICEACCOUNT_DIR") or DEFAULT_SA_DIR,
            termination_log=env.get("DATAPIPELINES_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG,
        )


@dataclass(frozen=True)
class LoadedConfig:
    spec: ConnectionSpec
    connection_name: str


def parse_spec(data: Any) -> ConnectionSpec:
    """A ConnectionSpec from a parsed document; ConfigError naming the bad fields otherwise."""
    if not isinstance(data, dict):
        raise ConfigError("the connection spec must be a mapping")
    try:
        return ConnectionSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{where}: {msg}" for where, msg in validation_problems(exc)]
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ConfigError("invalid connection spec: " + "; ".join(problems[:5]) + more) from None


def split_document(doc: Any) -> tuple[Any, str | None]:
    """(spec, metadata.name) of a whole manifest, or (doc, None) for a bare spec."""
    if isinstance(doc, dict) and "spec" in doc and ("kind" in doc or "metadata" in doc):
        kind = doc.get("kind")
        if kind not in (None, "PipelineConnection"):
            raise ConfigError(f"expected a PipelineConnection manifest, got kind {kind!r}")
        name = (doc.get("metadata") or {}).get("name")
        return doc["spec"], name
    return doc, None


def load(
    config_file: str | os.PathLike[str] | None,
    env: RunnerEnv,
    environ: Mapping[str, str] | None = None,
    name: str | None = None,
) -> LoadedConfig:
    """The spec from `config_file`, else from $DATAPIPELINES_CONNECTION_SPEC.

    The connection name (also dlt's pipeline name, the key of its state in the destination) is
    `name`, else $DATAPIPELINES_CONNECTION_NAME, else the manifest's metadata.name, else the
    file's stem.
    """
    environ_: Mapping[str, str] = os.environ if environ is None else environ
    manifest_name: str | None = None
    if config_file is not None:
        import yaml  # only for --config: not on a pod's start-up path

        path = Path(config_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {one_problem(exc)}") from None
        data, manifest_name = split_document(doc)
        fallback = path.stem
    else:
        raw = environ_.get(pod.ENV_CONNECTION_SPEC)
        if not raw:
            raise ConfigError("no connection spec: set DATAPIPELINES_CONNECTION_SPEC or --config")
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"DATAPIPELINES_CONNECTION_SPEC is not JSON: {exc.msg}") from None
        data, manifest_name = split_document(doc)
        fallback = "connection"
    spec = parse_spec(data)
    connection_name = name or env.connection_name or manifest_name or fallback
    return LoadedConfig(spec=spec, connection_name=connection_name)


def one_problem(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def pipeline_name(connection_name: str) -> str:
    """dlt pipeline name for a connection: lower snake case, stable across runs."""
    name = re.sub(r"[^a-z0-9_]+", "_", connection_name.lower()).strip("_")
    return f"dp_{name or 'connection'}"
