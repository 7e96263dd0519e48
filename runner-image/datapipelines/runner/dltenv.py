"""dlt's settings for the runner, set through the environment BEFORE `import dlt`.

Measured in /work/shared/RUNNER-NOTES.md: telemetry off, no compression of intermediate files,
completed load files deleted, working directory and HOME on the writable data volume (the root
filesystem is read-only and dlt writes `<home>/.dlt/.anonymous_id`). Values already set in the
environment win, so a connection's `runner.env` can override any of them.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DATA_WRITER__DISABLE_COMPRESSION": "true",
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    "RUNTIME__LOG_LEVEL": "WARNING",
    # Arrow items (sql_database, csv/parquet files) get `_dlt_load_id` too: rows_inserted is
    # counted per load id in the destination
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "true",
    # fail an unreachable/broken HTTP source after ~7 s, not after dlt's 5 attempts (~16 s)
    "RUNTIME__REQUEST_MAX_ATTEMPTS": "3",
    "RUNTIME__REQUEST_TIMEOUT": "60",
    # a load job that fails transiently fails the load at once: the runner rolls the package
    # back and retries the attempt (sync.py). dlt's own in-package job retries could load a job
    # twice whose commit reached the database but whose acknowledgement did not
    "LOAD__RAISE_ON_MAX_RETRIES": "1",
    # intermediate files of at most 100k rows: normalize and load work file by file, so memory
    # stays flat in the number of records (a 1M-record sync peaks where a 100k one does)
    "DATA_WRITER__FILE_MAX_ITEMS": "100000",
}

#: DuckDB loads one file at a time: each concurrent load job holds its own buffers (two jobs
#: of 100k rows: ~490 MB peak RSS, one: ~290 MB), and it gains little from parallel jobs
DUCKDB_DEFAULTS = {"LOAD__WORKERS": "1"}

#: rest_api pages become Arrow tables when flat and stay rows when nested (arrowpages.py):
#: Arrow rows get a `_dlt_id` like dlt's rows, so either kind of page fits the same table
ARROW_PAGES_DEFAULTS = {"NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID": "true"}


def configure(data_dir: str | os.PathLike[str]) -> Path:
    """Points dlt at `data_dir` and applies the defaults; returns the pipelines directory."""
    root = Path(data_dir)
    home = root / "home"
    dlt_dir = root / "dlt"
    pipelines = dlt_dir / "pipelines"
    for path in (home, pipelines):
        path.mkdir(parents=True, exist_ok=True)
    os.environ["DLT_DATA_DIR"] = str(dlt_dir)
    os.environ["HOME"] = str(home)
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    return pipelines


def configure_duckdb() -> None:
    for key, value in DUCKDB_DEFAULTS.items():
        os.environ.setdefault(key, value)


def configure_arrow_pages() -> None:
    for key, value in ARROW_PAGES_DEFAULTS.items():
        os.environ.setdefault(key, value)


def avoid_sqlalchemy() -> None:
    """dlt renders destination credentials with SQLAlchemy's URL class (imported on first use,
    ~0.15 s) and ships a port of that class for installations without SQLAlchemy. Runs whose
    source is not sql_database use the port; nothing else of SQLAlchemy is needed then."""
    import sys

    if "sqlalchemy" in sys.modules or "dlt.common.libs.sql_alchemy_compat" in sys.modules:
        return
    try:
        from dlt.common.libs import sql_alchemy_shims
    except ImportError:
        return
    sys.modules["dlt.common.libs.sql_alchemy_compat"] = sql_alchemy_shims


def patch_csv_row_count() -> None:
    """dlt's CSV writer counts cells, not rows (dlt-hub/dlt#4461): normalize's row counts are
    inflated for `loader_file_format="csv"`. Count rows instead. `rows_inserted` never relies on
    this (it is counted in the destination); it only keeps the normalize progress honest."""
    from dlt.common.data_writers import writers

    csv_writer = getattr(writers, "CsvWriter", None)
    if csv_writer is None or getattr(csv_writer, "_datapipelines_patched", False):
        return
    original = csv_writer.write_data

    def write_data(self, items):  # type: ignore[no-untyped-def]
        before = self.items_count
        original(self, items)
        self.items_count = before + len(items)

    csv_writer.write_data = write_data
    csv_writer._datapipelines_patched = True
