"""Serve one vendor mock on loopback until interrupted:

python -m datapipelines.mocks hubspot --port 8801 --rows 200
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from . import VENDORS, mock_class, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m datapipelines.mocks", description=__doc__)
    parser.add_argument("vendor", choices=sorted(VENDORS))
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--rows", type=int, default=50, help="size of the generated dataset")
    args = parser.parse_args(argv)
    api = mock_class(args.vendor)(rows=args.rows)  # type: ignore[call-arg]
    with serve(api, port=args.port):
        print(f"{args.vendor} mock on {api.url} (controls: {api.url}/__mock__/stats)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
