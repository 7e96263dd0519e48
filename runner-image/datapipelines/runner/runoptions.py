"""A run's own options (PipelineRun.spec: fullRefresh, streams, since), from its pod's
DATAPIPELINES_RUN_OPTIONS, and how they change a sync:

* `streams`: only those resources are extracted (the others' tables and cursors are untouched);
* `since`: each incremental resource starts from that time — written into the connection's own
  start value (a SaaS preset's startDate, a rest_api resource's or a sql_database source's
  incremental initial_value) — and its stored cursor is set aside for this run;
* `fullRefresh`: the selected resources start from no cursor, and their tables are *replaced*
  by this run's rows: dlt loads them into a staging dataset and swaps them in only once
  everything is loaded (replace strategy insert-from-staging), so a refresh that fails before
  that leaves the old rows, and the journal rolls the package back as any failed load, so the
  old state (cursors) stays too.

Setting a cursor aside is a change of the pipeline state that is saved with this run's load
package: if the load does not complete, the package's state row is rolled back with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from datapipelines.resources import podcontract as pod
from datapipelines.resources.connection import ConnectionSpec, SourceType, WriteDisposition
from datapipelines.resources.run import RunOptions
from datapipelines.resources.saas import SaasSource
from datapipelines.resources.times import format_time

from .errors import ConfigError

REPLACE_STRATEGY_ENV = "DESTINATION__REPLACE_STRATEGY"


def from_environ(environ: Mapping[str, str] | None = None) -> RunOptions | None:
    """The run's options, None for a plain run; ConfigError when they do not parse."""
    raw = (os.environ if environ is None else environ).get(pod.ENV_RUN_OPTIONS)
    if not raw:
        return None
    try:
        return RunOptions.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"{pod.ENV_RUN_OPTIONS} is not a run's options: {exc}") from None


def with_since(spec: ConnectionSpec, since: datetime) -> ConnectionSpec:
    """`spec` whose incremental start values are `since` (each source type's own field)."""
    when = format_time(since) or ""
    settings = spec.source_settings
    if isinstance(settings, SaasSource) and "start_date" in type(settings).model_fields:
        return _with_source(spec, settings.model_copy(update={"start_date": when}))
    if spec.type is SourceType.REST_API and spec.source.rest_api is not None:
        rest = spec.source.rest_api
        resources = [_resource_since(r, when) for r in rest.resources]
        if resources == list(rest.resources):
            raise ConfigError(
                "since needs an incremental resource: none of this rest_api source's resources "
                "has an `incremental` cursor"
            )
        return _with_source(spec, rest.model_copy(update={"resources": resources}))
    if spec.type is SourceType.SQL_DATABASE and spec.source.sql_database is not None:
        sql = spec.source.sql_database
        if sql.incremental is None:
            raise ConfigError("since needs sqlDatabase.incremental (a cursor column)")
        inc = sql.incremental.model_copy(update={"initial_value": when})
        return _with_source(spec, sql.model_copy(update={"incremental": inc}))
    raise ConfigError(f"since is not supported for a {spec.type.value} source (it has no cursor)")


def _resource_since(resource: Any, when: str) -> Any:
    if isinstance(resource, dict) and isinstance(resource.get("incremental"), dict):
        return {**resource, "incremental": {**resource["incremental"], "initial_value": when}}
    return resource


def _with_source(spec: ConnectionSpec, settings: Any) -> ConnectionSpec:
    from datapipelines.resources.connection import _SOURCE_ATTR

    source = spec.source.model_copy(update={_SOURCE_ATTR[spec.type]: settings})
    return spec.model_copy(update={"source": source})


def check(spec: ConnectionSpec, options: RunOptions) -> None:
    """Refuse what would load rows twice: `since` re-loads rows an append connection has."""
    if (
        options.since is not None
        and not options.full_refresh
        and spec.write_disposition is WriteDisposition.APPEND
    ):
        raise ConfigError(
            "since on a writeDisposition append connection would load the rows since then a "
            "second time; use it with fullRefresh, or on a merge connection"
        )


def select(source: Any, streams: list[str]) -> Any:
    """The source with only `streams` selected; ConfigError naming the known ones."""
    known = list(source.resources.selected)
    unknown = [s for s in streams if s not in known]
    if unknown:
        raise ConfigError(
            f"unknown stream(s) {', '.join(unknown)}: this connection has {', '.join(known)}"
        )
    return source.with_resources(*streams)


def set_cursors_aside(pipeline: Any, schema_name: str, resources: list[str]) -> list[str]:
    """Drop the state (cursors) of `resources` from the pipeline state restored from the
    destination; saved with this run's package. The names whose state was dropped."""
    from dlt.pipeline.drop import prepare_drop_resources

    def stored(state: Any) -> set[str]:
        sources = state.get("sources") or {}
        return set(((sources.get(schema_name) or {}).get("resources") or {}).keys())

    before = stored(pipeline.state)  # a copy: nothing changes unless there is a cursor
    if not before & set(resources) or schema_name not in pipeline.schemas:
        return []  # a first run, or nothing of these resources stored
    schema = pipeline.schemas[schema_name]
    with pipeline.managed_state(extract_state=True) as state:
        prepare_drop_resources(schema.clone(), state, resources=resources, state_only=True)
        after = stored(state)
    return sorted(before - after)
