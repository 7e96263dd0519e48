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
}


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
