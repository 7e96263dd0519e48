"""`datapipelines`: the command line client of the REST API (typer + rich).

It talks only to the REST API (`--api` / `DATAPIPELINES_API_URL`, key from `--key` /
`DATAPIPELINES_API_KEY` / the demo's `.cluster/api-key`), never to Kubernetes.
"""

from __future__ import annotations

import sys


def main() -> None:
    """The console script; says which extra to install when typer or rich are missing."""
    try:
        from datapipelines.cli.app import run
    except ImportError as exc:  # e.g. the API image, which has no `cli` extra
        sys.stderr.write(
            f"error: the datapipelines CLI needs its extra: pip install 'datapipelines[cli]' "
            f"({exc})\n"
        )
        sys.exit(4)
    run()
