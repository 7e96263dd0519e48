"""Whether a connection can run here: what the CRD cannot judge, and the installation's
sandbox. Pure.

The apiserver already refused most bad input at admission (schema, CEL, and the chart's
ValidatingAdmissionPolicy for the sandbox). These checks catch the rest (a cron that parses,
a time zone that exists, a warehouse volume that is configured) and objects stored before a
stricter rule, so that a connection that is Ready is one the runner can run: otherwise the
operator marks it ``Ready=False`` naming the field or setting, and fails its runs before any
Job exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from datapipelines.resources import podcontract as pod
from datapipelines.resources import quantity, schedule
from datapipelines.resources.connection import ConnectionSpec, DestinationType, SourceType

from .config import Settings
from .views import ConnectionView

REASON_INVALID_SPEC = "InvalidSpec"
REASON_SANDBOX = "SandboxViolation"
REASON_NO_WAREHOUSE = "WarehouseNotConfigured"
#: Secrets no connection may name, whatever the settings: Helm keeps each release's rendered
#: manifests (with a generated API key) in Secrets named so.
DENIED_SECRET_PREFIXES = ("sh.helm.release.v1.",)


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def problems(view: ConnectionView, settings: Settings) -> list[Problem]:
    """Every reason the connection cannot run, most fundamental first (empty: it can)."""
    if view.spec is None:
        return [Problem(REASON_INVALID_SPEC, f"{path}: {msg}") for path, msg in view.spec_problems]
    spec = view.spec
    found: list[Problem] = []
    bad = schedule.validate(spec.schedule, spec.time_zone)
    if bad is not None:
        found.append(Problem(*bad))
    found += _placement(spec, settings)
    found += sandbox(spec, settings)
    return found


def _placement(spec: ConnectionSpec, settings: Settings) -> list[Problem]:
    if spec.destination.type is not DestinationType.DUCKDB:
        return []
    duck = spec.destination.duck
    out: list[Problem] = []
    if duck.on_warehouse and not settings.warehouse_claim:
        where = "the default destination" if duck.path is None else f"{duck.file}"
        out.append(
            Problem(
                REASON_NO_WAREHOUSE,
                f"{where} is on the warehouse volume ({pod.WAREHOUSE_DIR}), but this installation "
                "has none (chart value warehouse.persistence.enabled): give "
                "spec.destination.duckdb a path with a volume, or a PostgreSQL destination",
            )
        )
    elif duck.volume is not None and not pod.is_mountable(pod.dirname(duck.file)):
        out.append(
            Problem(
                REASON_INVALID_SPEC,
                f"spec.destination.duckdb.path {duck.file!r}: its directory cannot take a volume",
            )
        )
    fs = spec.source.filesystem
    if spec.type is SourceType.FILESYSTEM and fs is not None and fs.volume is not None:
        source_dir = pod.bucket_dir(fs.bucket_url)
        if duck.volume is not None and source_dir == pod.dirname(duck.file):
            out.append(
                Problem(
                    REASON_INVALID_SPEC,
                    "spec.source.filesystem.bucketUrl and spec.destination.duckdb.path share the "
                    f"directory {source_dir}: each volume needs a directory of its own",
                )
            )
    return out


def sandbox(spec: ConnectionSpec, settings: Settings) -> list[Problem]:
    """The installation's rules of what a connection may make its pod do (docs/security.md)."""
    out: list[Problem] = []
    image = spec.runner.image
    if image is not None:
        allowed = settings.allowed_images()
        if not any(
            image == repo or image.startswith(repo + ":") or image.startswith(repo + "@")
            for repo in allowed
        ):
            out.append(
                Problem(
                    REASON_SANDBOX,
                    f"spec.runner.image {image!r} is not allowed: allowed repositories are "
                    f"{', '.join(allowed)} (setting sandbox.allowedImages)",
                )
            )
    volumes = []
    if spec.destination.duckdb is not None and spec.destination.duckdb.volume is not None:
        volumes.append(("spec.destination.duckdb.volume", spec.destination.duckdb.volume.kind))
    if spec.source.filesystem is not None and spec.source.filesystem.volume is not None:
        volumes.append(("spec.source.filesystem.volume", spec.source.filesystem.volume.kind))
    for field, kind in volumes:
        if kind not in settings.sandbox_volume_types:
            out.append(
                Problem(
                    REASON_SANDBOX,
                    f"{field}: volume type {kind} is not allowed here (allowed: "
                    f"{', '.join(settings.sandbox_volume_types)}; setting sandbox.volumeTypes)",
                )
            )
    for index, env in enumerate(spec.runner.env):
        ref = env.value_from.secret_key_ref if env.value_from else None
        if ref is not None and ref.name not in settings.sandbox_env_secrets:
            allowed_env = ", ".join(settings.sandbox_env_secrets) or "none"
            out.append(
                Problem(
                    REASON_SANDBOX,
                    f"spec.runner.env[{index}] ({env.name}) reads Secret {ref.name!r}, which "
                    f"is not allowed for runner.env (allowed: {allowed_env}; setting "
                    "sandbox.envSecrets); credentials belong in the source's or destination's "
                    "…SecretRef fields",
                )
            )
    if settings.sandbox_max_resources and spec.runner.resources is not None:
        try:
            above = quantity.over(spec.runner.resources.to_k8s(), settings.sandbox_max_resources)
        except ValueError as error:
            above = [str(error)]
        if above:
            out.append(
                Problem(
                    REASON_SANDBOX,
                    f"spec.runner.resources above this installation's maximum: "
                    f"{'; '.join(above)} (setting sandbox.maxResources)",
                )
            )
    for secret in spec.secret_refs():
        if secret.name in settings.sandbox_denied_secrets or secret.name.startswith(
            DENIED_SECRET_PREFIXES
        ):
            out.append(
                Problem(
                    REASON_SANDBOX,
                    f"the connection references Secret {secret.name!r}, which belongs to the "
                    "installation (its API key, history DSN or Helm release) and no connection "
                    "may read",
                )
            )
    return out
