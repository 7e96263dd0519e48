"""`datapipelines-runner`: run one connection's sync and report the result.

    datapipelines-runner                      # in a pod: spec and settings from the environment
    datapipelines-runner --config conn.yaml [--secrets-dir DIR] [--data-dir DIR]

Exit codes: 0 success, 1 sync failure (the Job may retry), 2 bad configuration, 3 schema
contract violated. The last log line names the cause.
The result goes to the termination-message file ($DATAPIPELINES_TERMINATION_LOG, default
/dev/termination-log, at most 4 KiB) and, with apiserver access, to the run's
status.runnerResult (the only status fields the runner writes are progress and runnerResult).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from datapipelines.resources.logformat import JsonFormatter, TextFormatter

from . import dltenv, httpretry, oauth2, runoptions, secrets
from .errors import EXIT_OK, ConfigError, Failure, classify, one_line

if TYPE_CHECKING:
    from datapipelines.resources.connection import ConnectionSpec

    from . import config
    from .keptlog import LogKeeper
    from .progress import ProgressReporter
    from .result import RunResult

log = logging.getLogger("datapipelines.runner")


def setup_logging(fmt: str) -> LogKeeper:
    """Log lines to stderr in the project's one schema (redacted), and the same lines to a
    bounded keeper whose head and tail are kept with the run (keptlog.py)."""
    from .keptlog import LogKeeper

    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    handler.setFormatter(formatter(redact=secrets.redact))  # the project's one log schema
    keeper = LogKeeper()
    keeper.setFormatter(formatter(redact=secrets.redact))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_datapipelines", False)]
    for each in (handler, keeper):
        setattr(each, "_datapipelines", True)  # noqa: B010 - marks the handlers this installs
        root.addHandler(each)
    root.setLevel(logging.INFO)
    return keeper


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="datapipelines-runner",
        description="Run one PipelineConnection's sync (dlt) and report the result.",
    )
    parser.add_argument("--config", help="PipelineConnection manifest or spec (YAML/JSON)")
    parser.add_argument("--secrets-dir", help="dir of <secret name>/<key> files")
    parser.add_argument("--data-dir", help="writable working dir (default $DATAPIPELINES_DATA_DIR)")
    parser.add_argument("--name", help="connection name (default: the manifest's metadata.name)")
    parser.add_argument(
        "--log-format", choices=("json", "text"), help="default $DATAPIPELINES_LOG_FORMAT or json"
    )
    return parser.parse_args(argv)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def failure_report(
    failure: Failure, exc: BaseException | None, extracted: int, attempts: int = 1
) -> str:
    lines = [
        f"FAILED: {failure.message}",
        f"records extracted before the failure: {extracted}",
        f"attempts: {attempts}"
        + (" (a lost destination is retried after a pause)" if attempts > 1 else ""),
        "data committed by earlier runs is untouched; rows this run had loaded are rolled back "
        "(at once, or by the next attempt before it extracts again from the state saved in "
        "the destination)",
    ]
    if exc is not None:
        lines.append("")
        lines.append("cause chain:")
        from .errors import chain

        for e in chain(exc):
            lines.append(f"  {type(e).__module__}.{type(e).__name__}: {one_line(str(e), 400)}")
        lines.append("")
        lines.append("".join(traceback.format_exception(exc, limit=-8)).strip())
    return secrets.redact("\n".join(lines))


def patch_result_only(env: config.RunnerEnv, result: RunResult) -> None:
    """status.result for a run that never started a sync (bad config); best effort."""
    from .kube import StatusClient

    try:
        client = StatusClient.from_env(env)
        if client is not None:
            client.patch_status({"runnerResult": result.to_dict()})
    except Exception as exc:
        log.warning("status patch failed: %s", secrets.redact(str(exc)))


def main(argv: list[str] | None = None) -> int:
    """The runner; its exit code.

    Start-up is what imports cost (pydantic models, dlt): they happen here, with the cyclic
    garbage collector off (imports allocate much and leave no cycles to collect; ~10% of the
    import time); it is back on, with the imported objects frozen out of its way, before the
    sync starts.

    Called without `argv` it is the process's entry point (the console script) and ends the
    process itself once everything is written and flushed: the interpreter's own shutdown
    would spend ~0.2 s tearing down dlt, pyarrow and DuckDB for nothing. With `argv` (tests,
    other callers) it returns.
    """
    gc.disable()
    try:
        code = _main(argv)
    finally:
        gc.enable()
        gc.unfreeze()  # in-process callers (tests) get their collector back as it was
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> NoReturn:
    """Flushes the log and the standard streams, then exits without tearing the interpreter
    down (every file and database connection of the run is closed by then)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _start_collecting() -> None:
    gc.enable()
    gc.freeze()  # the modules and models imported so far: never garbage


def prefetch_first_page(spec: ConnectionSpec) -> None:
    """A rest_api source's first request, sent now from a thread (prefetch.py): while dlt is
    imported, the source is already answering."""
    from datapipelines.resources.connection import SourceType

    if spec.type is not SourceType.REST_API or spec.source.rest_api is None:
        return
    if spec.oauth2 is not None:  # the token is refreshed (and rotated) first, once
        return
    from . import prefetch
    from .restconfig import rest_api_config

    try:
        first = rest_api_config(spec.source.rest_api, spec.write_disposition)
    except ConfigError:
        return  # the source builder reports it
    prefetch.start(first)


def _main(argv: list[str] | None) -> int:
    from datapipelines.resources.connection import SourceType

    from . import config

    started = time.monotonic()
    args = parse_args(argv)
    keeper = setup_logging(args.log_format or os.environ.get("DATAPIPELINES_LOG_FORMAT", "json"))
    env = config.RunnerEnv.from_environ()
    secrets.set_secrets_dir(args.secrets_dir)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # a deleted Job: stop, still report

    def finish(result: RunResult, reporter: ProgressReporter | None = None) -> int:
        from . import prefetch
        from .result import with_report_limit, write_termination_message

        prefetch.finish()
        result.duration_ms = int((time.monotonic() - started) * 1000)
        result.pod_name = env.pod_name
        if result.success:
            log.info(
                "sync succeeded: %d rows inserted, %d records extracted in %.2fs (load id %s)",
                result.rows_inserted,
                result.records_reported,
                result.duration_ms / 1000,
                result.load_id,
            )
        else:
            log.error("%s", result.error)
        result.log = keeper.kept()  # every line so far, the outcome's included
        full = with_report_limit(result)
        if reporter is not None:
            reporter.finish(full.to_dict())
        else:
            patch_result_only(env, full)
        if not write_termination_message(result, env.termination_log):
            log.debug("no termination-message file at %s", env.termination_log)
        return 0 if result.success else (exit_code or 1)

    exit_code = EXIT_OK
    try:
        loaded = config.load(args.config, env, name=args.name)
        options = runoptions.from_environ()
        httpretry.apply(loaded.spec)  # before dlt reads its request settings
        oauth2.forget()  # a grant is refreshed once per run
        data_dir = args.data_dir or env.data_dir
        try:
            pipelines_dir = dltenv.configure(data_dir)
        except OSError as exc:
            raise ConfigError(f"data dir {data_dir} is not writable: {exc.strerror}") from None
    except ConfigError as exc:
        from .result import RunResult

        failure = classify(exc)
        exit_code = failure.exit_code
        return finish(RunResult(success=False, error=failure.message, report=failure.message))

    prefetch_first_page(loaded.spec)
    # dlt reads its settings when imported: only now
    from .kube import StatusClient
    from .progress import ProgressCollector, ProgressReporter
    from .sync import RunIdentity, SyncFailed, run_sync

    dltenv.patch_csv_row_count()
    httpretry.install()
    if loaded.spec.type is not SourceType.SQL_DATABASE:
        dltenv.avoid_sqlalchemy()
    if loaded.spec.type is SourceType.REST_API:
        import dlt.sources.rest_api  # noqa: F401 - imported while the collector is off
    _start_collecting()
    collector = ProgressCollector()
    reporter = ProgressReporter(collector, StatusClient.from_env(env)).start()
    log.info(
        "sync of connection %s (%s -> %s, dataset %s) started",
        loaded.connection_name,
        loaded.spec.type.value,
        loaded.spec.destination.type.value,
        loaded.spec.schema_name,
    )
    try:
        outcome = run_sync(
            loaded.spec,
            loaded.connection_name,
            pipelines_dir,
            data_dir,
            collector,
            RunIdentity.of(env.run_name, env.pod_name, env.namespace),
            options=options,
        )
    except (SyncFailed, Exception, KeyboardInterrupt) as exc:
        from .result import RunResult

        cause = exc.cause if isinstance(exc, SyncFailed) else exc
        if isinstance(exc, KeyboardInterrupt):
            failure = Failure("cancelled", str(exc) or "interrupted")
        elif isinstance(exc, SyncFailed):
            failure = classify(cause, source=exc.source, destination=exc.destination)
        else:
            failure = classify(cause)
        exit_code = failure.exit_code
        counts = collector.counts()
        result = RunResult(
            success=False,
            error=secrets.redact(failure.message),
            records_reported=collector.records_extracted(),
            progress_counts=counts,
            report=failure_report(
                failure,
                cause,
                collector.records_extracted(),
                exc.attempts if isinstance(exc, SyncFailed) else 1,
            ),
        )
        return finish(result, reporter)
    from .result import RunResult

    result = RunResult(
        success=True,
        rows_inserted=outcome.rows_inserted,
        records_reported=outcome.records_extracted,
        progress_counts=outcome.progress_counts,
        report=outcome.report,
        load_id=outcome.load_ids[-1] if outcome.load_ids else None,
        schema_changes=outcome.schema_changes,
        loaded_schema=outcome.loaded_schema,
    )
    log.info("report:\n%s", outcome.report)
    return finish(result, reporter)


if __name__ == "__main__":
    sys.exit(main())
