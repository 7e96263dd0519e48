"""One sync: dlt's steps one by one, recovery and a journal around the load, in-process retries.

An attempt (`SyncAttempt.run`):

1. `sync_destination`: dlt restores the state (incremental cursors) and schema from the
   destination; dlt only restores state of completely loaded packages;
2. recovery (recovery.py), in a thread while the source is read: packages earlier attempts
   left half loaded are rolled back; if this run's package is already complete (the pod died
   after the load, before it reported), the extraction stops, nothing is loaded again and
   that package's counts are the result;
3. extract (with the connection's schema contract), then — recovery done — normalize;
4. the journal records the package as `loading` (journal.py), then dlt loads it; then `loaded`;
5. `rows_inserted` is counted in the destination (counting.py) and the schema changes are
   dlt's schema before against after (schemachanges.py).

A transient destination failure (unreachable, dropped connection, DuckDB file locked) in any
step is retried by a new attempt after a pause (retries.py) with a fresh working dir: that
attempt's recovery rolls back whatever the failed one left, so a retry never duplicates rows
nor skips any. dlt itself retries no load job (`LOAD__RAISE_ON_MAX_RETRIES=1`, dltenv.py): a job
whose commit was lost in transit could otherwise be loaded twice.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dlt

from datapipelines.resources.connection import (
    ConnectionSpec,
    DestinationType,
    RestApiSource,
    SourceType,
)
from datapipelines.resources.saas import SaasSource

from . import dltenv, httpretry, journal, runoptions, schemachanges
from .config import pipeline_name
from .counting import count_loaded_rows
from .destinations import DestinationSetup, build_destination
from .destlock import destination_lock
from .errors import ConfigError, classify
from .journal import JournalEntry
from .progress import ProgressCollector
from .recovery import (
    Recovery,
    RecoveryTask,
    StopWhenAlreadyLoaded,
    nested_parents,
    roll_back,
)
from .report import render_report
from .retries import RetryPolicy
from .secrets import redact
from .sources import BuiltSource, ItemShape, build_source

if TYPE_CHECKING:
    from datapipelines.resources.run import LoadedSchema, RunOptions, SchemaChange

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class SyncOutcome:
    load_ids: list[str]
    rows_by_table: dict[str, int]
    records_extracted: int
    progress_counts: dict[str, dict[str, int]]
    report: str
    timings: dict[str, float] = field(default_factory=dict)
    schema_changes: list[SchemaChange] = field(default_factory=list)
    attempts: int = 1
    loaded_schema: LoadedSchema | None = None

    @property
    def rows_inserted(self) -> int:
        return sum(self.rows_by_table.values())


class SyncFailed(Exception):
    """The sync failed; `source`/`destination` describe the two ends for the error line."""

    def __init__(
        self, cause: BaseException, destination: str, source: str, attempts: int = 1
    ) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.destination = destination
        self.source = source
        self.attempts = attempts


@dataclass(frozen=True)
class RunIdentity:
    """Who loads: `run_key` ties packages to the run across pods (DATAPIPELINES_RUN_NAME, or a
    per-process id outside a cluster); `attempt` is the pod's name."""

    run_key: str
    attempt: str | None = None
    namespace: str | None = None
    """The connection's namespace (None outside a cluster): a destination schema belongs to
    the connection of one namespace."""

    @classmethod
    def of(
        cls, run_name: str | None, pod_name: str | None, namespace: str | None = None
    ) -> RunIdentity:
        return cls(run_name or f"local-{uuid.uuid4().hex[:12]}", pod_name, namespace)


def describe_source(spec: ConnectionSpec) -> str:
    settings = spec.source_settings
    if isinstance(settings, RestApiSource | SaasSource):
        return f"{spec.type.value} {settings.base_url}"
    if spec.type is SourceType.SQL_DATABASE:
        return "source database"
    fs = spec.source.filesystem
    return f"files {fs.bucket_url}/{fs.file_glob}" if fs else "source"


def current_schema(pipeline: Any) -> Any:
    """The pipeline's default schema, None before anything was extracted or restored."""
    name = pipeline.default_schema_name
    return pipeline.schemas[name] if name and name in pipeline.schemas else None


def run_sync(
    spec: ConnectionSpec,
    connection_name: str,
    pipelines_dir: Path,
    data_dir: str,
    collector: ProgressCollector,
    identity: RunIdentity | None = None,
    retry: RetryPolicy | None = None,
    options: RunOptions | None = None,
) -> SyncOutcome:
    """The sync, retried on transient destination failures; SyncFailed when it gives up.
    `options`: the run's own (full refresh, streams, since; runoptions.py)."""
    identity = identity or RunIdentity.of(None, None)
    retry = retry or RetryPolicy.from_env()
    source_desc = describe_source(spec)
    destination_desc: str = spec.destination.type.value
    name = pipeline_name(connection_name)
    try:
        if options is not None:
            runoptions.check(spec, options)
            if options.since is not None:
                spec = runoptions.with_since(spec, options.since)
            if options.full_refresh:  # replaced tables are swapped in once all is loaded
                os.environ[runoptions.REPLACE_STRATEGY_ENV] = "insert-from-staging"
        built = build_for_run(spec, name, options)
        setup = build_destination(spec, data_dir, built.shape is not ItemShape.ROWS)
    except Exception as exc:
        raise SyncFailed(exc, destination_desc, source_desc) from exc
    if built.shape is ItemShape.PAGES:
        dltenv.configure_arrow_pages()
    if spec.destination.type is DestinationType.DUCKDB:
        dltenv.configure_duckdb()
    with ExitStack() as held:
        try:  # one writer per PostgreSQL schema, across shards (destlock.py)
            held.enter_context(destination_lock(spec, identity.run_key))
        except Exception as exc:
            raise SyncFailed(exc, setup.description, source_desc) from exc
        return _attempts(
            spec,
            connection_name,
            name,
            pipelines_dir,
            setup,
            built,
            identity,
            collector,
            retry,
            options,
        )


def _attempts(
    spec: ConnectionSpec,
    connection_name: str,
    name: str,
    pipelines_dir: Path,
    setup: DestinationSetup,
    built: BuiltSource,
    identity: RunIdentity,
    collector: ProgressCollector,
    retry: RetryPolicy,
    options: RunOptions | None = None,
) -> SyncOutcome:
    """The sync's attempts, with the destination held; SyncFailed when it gives up."""
    source_desc = describe_source(spec)
    pipeline = open_pipeline(name, pipelines_dir, setup, spec.schema_name, collector)
    attempt = 1
    while True:
        runner = SyncAttempt(
            spec, connection_name, pipeline, built, setup, identity, collector, options
        )
        try:
            try:
                check_owner(pipeline, spec, connection_name, identity)
            except ConfigError:
                raise
            except Exception as exc:  # the destination unreachable or busy: retried
                raise SyncFailed(exc, setup.description, source_desc) from exc
            outcome = runner.run()
            outcome.attempts = attempt
            return outcome
        except SyncFailed as failed:
            failure = classify(failed.cause, source=source_desc, destination=setup.description)
            delay = retry.delay_before(attempt + 1) if failure.transient else None
            if delay is None:
                if runner.loading:
                    runner.roll_back_quietly()
                raise SyncFailed(
                    failed.cause, setup.description, source_desc, attempt
                ) from failed.cause
            attempt += 1
            log.warning(
                "%s; attempt %d of %d in %.1fs (what this attempt loaded is rolled back first)",
                redact(failure.message),
                attempt,
                retry.attempts,
                delay,
            )
            time.sleep(delay)
            pipeline = pipeline.drop()  # a fresh working dir: state comes back from the destination
            collector.reset()
            try:
                built = build_for_run(spec, name, options)  # generators are single-use
            except Exception as exc:
                raise SyncFailed(exc, setup.description, source_desc) from exc


def build_for_run(spec: ConnectionSpec, name: str, options: RunOptions | None) -> BuiltSource:
    """The connection's source, with only the run's streams selected, and for a full refresh
    their write disposition replace."""
    built = build_source(spec, name)
    if options is None:
        return built
    if options.streams:
        built.source = runoptions.select(built.source, options.streams)
    if options.full_refresh:
        for resource in built.source.resources.selected.values():
            resource.apply_hints(write_disposition="replace")
    return built


def check_owner(
    pipeline: Any, spec: ConnectionSpec, connection_name: str, identity: RunIdentity
) -> None:
    """Refuse (before anything is extracted) a schema that a connection of the same name in
    another namespace loads: they would share dlt's state and the journal (one pipeline name)."""
    if identity.namespace is None:
        return
    with pipeline.sql_client() as client:
        if not client.has_dataset() or journal.JOURNAL_TABLE not in journal.existing_tables(client):
            return
        journal.ensure(client)  # adds the namespace column to an older journal
        others = journal.other_namespaces(client, pipeline.pipeline_name, identity.namespace)
    if others:
        raise ConfigError(
            f"destination conflict: schema {spec.schema_name} of this destination is loaded by "
            f"connection {connection_name} of namespace {', '.join(sorted(others))}; give this "
            "connection another schemaName or destination"
        )


def open_pipeline(
    name: str,
    pipelines_dir: Path,
    setup: DestinationSetup,
    dataset: str,
    collector: ProgressCollector,
) -> Any:
    pipeline = dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(pipelines_dir),
        destination=setup.destination,
        dataset_name=dataset,
        progress=collector,
    )
    if pipeline.has_pending_data:
        # a package left by an earlier failed run would be loaded INSTEAD of the new data; drop
        # the local working dir: the state comes back from the destination, and the journal's
        # recovery removes whatever that package had loaded
        log.warning("dropping pending load packages of an earlier failed run; state is restored")
        pipeline = pipeline.drop()
    return pipeline


class SyncAttempt:
    """One attempt: restore, recover, extract, normalize, journal, load, count (module doc)."""

    def __init__(
        self,
        spec: ConnectionSpec,
        connection_name: str,
        pipeline: Any,
        built: BuiltSource,
        setup: DestinationSetup,
        identity: RunIdentity,
        collector: ProgressCollector,
        options: RunOptions | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.set_aside: list[str] = []  # resources whose cursors this run set aside
        self.connection_name = connection_name
        self.pipeline = pipeline
        self.built = built
        self.setup = setup
        self.identity = identity
        self.collector = collector
        self.timings: dict[str, float] = {}
        self.loading: list[str] = []  # packages journaled as loading by this attempt
        self.started = time.monotonic()

    def step(self, name: str, call: Callable[[], T]) -> T:
        """Runs one step, timed; any failure becomes SyncFailed."""
        t0 = time.monotonic()
        try:
            return call()
        except SyncFailed:
            raise
        except Exception as exc:
            raise SyncFailed(exc, self.setup.description, describe_source(self.spec)) from exc
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - t0

    @contextmanager
    def sql_client(self) -> Iterator[Any]:
        with self.pipeline.sql_client() as client:
            yield client

    def run(self) -> SyncOutcome:
        pipeline = self.pipeline
        self.step("restore", pipeline.sync_destination)
        schema = current_schema(pipeline)
        before = schemachanges.snapshot(schema)
        # the journal matters before the load only: recovery runs while the source is read
        task = self.step("recover", lambda: self._start_recovery(schema))
        self._extract(task, schema)
        recovery = self.step("recover", task.result)
        if recovery.loaded:
            return self._already_loaded(recovery, schema)
        self.step("normalize", pipeline.normalize)
        load_ids = list(pipeline.list_normalized_load_packages())
        after = schemachanges.snapshot(current_schema(pipeline))
        changes = schemachanges.diff(before, after)[: schemachanges.MAX_CHANGES]
        records = self.collector.records_extracted()
        rows_by_table: dict[str, int] = {}
        dlt_info, counted_in = "", "counted in the destination"
        if load_ids:
            self.step("journal", lambda: self._journal_begin(load_ids, records, changes))
            dlt_info = str(self.step("load", pipeline.load))
            self.loading = []
            self.collector.set_stage("load")
            rows_by_table, counted_in = self._count(load_ids)
        self.collector.set_rows_loaded(rows_by_table)
        as_arrow, as_rows = self.built.arrow_page_counts()
        notes = self._recovery_notes(recovery) + self._option_notes(rows_by_table)
        waits = httpretry.summary()
        if waits:
            notes.append(waits)
        if as_arrow or as_rows:
            notes.insert(0, f"pages: {as_arrow} as Arrow tables, {as_rows} as rows")
        counts = self.collector.counts()
        counts["load"] = dict(rows_by_table)
        return self._outcome(
            load_ids,
            records,
            rows_by_table,
            changes,
            counts,
            schema_after=after,
            notes=notes,
            dlt_info=dlt_info,
            counted_in=counted_in,
        )

    def _outcome(
        self,
        load_ids: list[str],
        records: int,
        rows_by_table: dict[str, int],
        changes: list[SchemaChange],
        progress_counts: dict[str, dict[str, int]],
        **report_extra: Any,
    ) -> SyncOutcome:
        """The outcome of a sync, with its (redacted) human report."""
        report = render_report(
            self.connection_name,
            self.spec,
            self.setup.description,
            load_ids=load_ids,
            records_extracted=records,
            rows_by_table=rows_by_table,
            timings=self.timings,
            elapsed=time.monotonic() - self.started,
            schema_changes=changes,
            **report_extra,
        )
        from .loadedschema import loaded_schema

        return SyncOutcome(
            load_ids=load_ids,
            rows_by_table=rows_by_table,
            records_extracted=records,
            progress_counts=progress_counts,
            report=redact(report),
            timings=dict(self.timings),
            schema_changes=changes,
            loaded_schema=loaded_schema(current_schema(self.pipeline)),
        )

    def _extract(self, task: RecoveryTask, schema: Any) -> None:
        """dlt's extract with the connection's schema contract; ended early (no failure) when
        the recovery finds this run already loaded."""
        for resource in self.built.source.resources.values():
            resource.add_step(StopWhenAlreadyLoaded(task))
        self.built.learn_destination_types(schema)
        options = self.options
        if options is not None and (options.full_refresh or options.since is not None):
            names = list(self.built.source.resources.selected)
            schema_name = self.built.source.schema.name
            self.set_aside = self.step(
                "extract",
                lambda: runoptions.set_cursors_aside(self.pipeline, schema_name, names),
            )
        contract = self.spec.schema_contract.to_dlt() if self.spec.schema_contract else None
        if contract and any(mode != "evolve" for mode in contract.values()):
            self.built.disable_arrow_pages()  # dlt applies discard/freeze row by row
        try:
            self.step(
                "extract",
                lambda: self.pipeline.extract(
                    self.built.source,
                    loader_file_format=self.setup.loader_file_format,
                    schema_contract=contract or None,
                ),
            )
        except SyncFailed:
            task.wait()
            if not task.already_loaded.is_set():
                raise

    def _count(self, load_ids: list[str]) -> tuple[dict[str, int], str]:
        """Rows per table counted in the destination, and how they were counted."""
        try:
            return self.step("count", lambda: self._count_and_finish(load_ids)), (
                "counted in the destination"
            )
        except SyncFailed as failed:
            # the data IS loaded (and journaled as such once a later attempt looks)
            log.warning("counting rows in the destination failed: %s", redact(str(failed)))
            rows = self.collector.counts().get("normalize", {})
            return rows, f"from dlt's normalize counts: the destination count failed ({failed})"

    # --- the steps around dlt's ------------------------------------------------------------

    def _start_recovery(self, schema: Any) -> RecoveryTask:
        client = self.pipeline.sql_client()  # created here, opened in the task's thread
        name, run_key = self.pipeline.pipeline_name, self.identity.run_key
        schema_name = self.built.source.schema.name
        return RecoveryTask(client, nested_parents(schema), name, run_key, schema_name).start()

    def _journal_begin(
        self, load_ids: list[str], records: int, changes: list[SchemaChange]
    ) -> None:
        dumped = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in changes]
        with self.sql_client() as client:
            journal.ensure(client)
            journal.prune(client, self.pipeline.pipeline_name)
            for load_id in load_ids:
                entry = JournalEntry(
                    load_id=load_id,
                    run_name=self.identity.run_key,
                    attempt=self.identity.attempt,
                    namespace=self.identity.namespace,
                    records_extracted=records,
                    schema_changes=dumped[: schemachanges.MAX_CHANGES],
                )
                journal.begin(client, self.pipeline.pipeline_name, entry)
                self.loading.append(load_id)

    def _count_and_finish(self, load_ids: list[str]) -> dict[str, int]:
        written = set(self.collector.counts().get("normalize", {}))
        with self.sql_client() as client:
            existing = journal.existing_tables(client)
            schema = current_schema(self.pipeline)
            rows = count_loaded_rows(client, schema, load_ids, existing, only=written or None)
            for load_id in load_ids:
                journal.set_status(
                    client,
                    self.pipeline.pipeline_name,
                    load_id,
                    journal.LOADED,
                    sum(rows.values()) if len(load_ids) == 1 else None,
                )
        return rows

    def _already_loaded(self, recovery: Recovery, schema: Any) -> SyncOutcome:
        """An earlier attempt of this run loaded its package completely: report that (what
        this attempt may have extracted meanwhile is never loaded)."""
        load_ids = [e.load_id for e in recovery.loaded]

        def count() -> dict[str, int]:
            with self.sql_client() as client:
                existing = journal.existing_tables(client)
                return count_loaded_rows(client, schema, load_ids, existing)

        rows_by_table = self.step("count", count)
        self.collector.set_stage("load")
        self.collector.set_rows_loaded(rows_by_table)
        from datapipelines.resources.run import SchemaChange

        changes = [
            SchemaChange.model_validate(c) for e in recovery.loaded for c in e.schema_changes
        ][: schemachanges.MAX_CHANGES]
        records = sum(e.records_extracted or 0 for e in recovery.loaded)
        attempts = ", ".join(sorted({e.attempt or "?" for e in recovery.loaded}))
        note = (
            f"already loaded by an earlier attempt of this run ({attempts}): its counts are "
            "reported, nothing was extracted again"
        )
        return self._outcome(
            load_ids,
            records,
            rows_by_table,
            changes,
            {"load": dict(rows_by_table)},
            schema_after=schemachanges.snapshot(schema),
            notes=[note, *self._recovery_notes(recovery)],
        )

    def _option_notes(self, rows_by_table: dict[str, int]) -> list[str]:
        """What the run's options did, for the report."""
        options = self.options
        if options is None:
            return []
        notes = [f"run options: {options.describe()}"]
        if self.set_aside:
            notes.append("cursors set aside (started again): " + ", ".join(self.set_aside))
        if options.full_refresh:
            tables = sorted(rows_by_table)
            notes.append(
                "replaced (their previous rows dropped, this run's swapped in): "
                + (", ".join(tables) if tables else "nothing loaded, nothing replaced")
            )
        return notes

    @staticmethod
    def _recovery_notes(recovery: Recovery) -> list[str]:
        notes = []
        if recovery.rolled_back:
            notes.append(
                "rolled back first (partly loaded by an earlier attempt): "
                + ", ".join(recovery.rolled_back)
            )
        if recovery.finished:
            notes.append("found complete (journal updated): " + ", ".join(recovery.finished))
        return notes

    def roll_back_quietly(self) -> None:
        """Giving up after a failed load: remove what it loaded now, if the destination lets
        us (else the next attempt or run does)."""
        parents = nested_parents(current_schema(self.pipeline))
        for load_id in self.loading:
            try:
                with self.sql_client() as client:
                    completed = journal.completed_loads(
                        client, [load_id], journal.existing_tables(client)
                    )
                    if load_id not in completed:
                        roll_back(client, parents, self.pipeline.pipeline_name, load_id)
            except Exception as exc:
                log.warning(
                    "could not roll back load package %s now (the next attempt will): %s",
                    load_id,
                    redact(str(exc)),
                )
