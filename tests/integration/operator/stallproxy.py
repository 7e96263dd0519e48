"""A TCP proxy on 127.0.0.1 in front of the apiserver that a test can stall: a network
partition that drops nothing.

    async with StallProxy() as proxy:          # forwards 127.0.0.1:<proxy.port> → :6443
        config = proxy.kubeconfig(tmp_path)     # the admin kubeconfig, server → the proxy
        proxy.stall()                           # connections stay open, no byte moves
        proxy.resume()                          # what was held is delivered now

While stalled, every connection stays open and nothing is forwarded in either direction;
new connections are accepted but not connected upstream. Bytes sent meanwhile (and a close)
are held, and delivered on ``resume``, as TCP delivers them once a partition heals: a request
a client gave up on may still reach the apiserver late. TLS passes through untouched (the
apiserver's certificate names IP 127.0.0.1, whatever the port).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Self

import yaml

from tests.support.cluster import KUBECONFIG

UPSTREAM = ("127.0.0.1", 6443)
CHUNK = 65536


class StallProxy:
    def __init__(self, upstream: tuple[str, int] = UPSTREAM) -> None:
        self.upstream = upstream
        self.port = 0
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def kubeconfig(self, directory: Path, source: Path = KUBECONFIG) -> Path:
        """A copy of ``source`` whose clusters all point at this proxy."""
        config = yaml.safe_load(source.read_text())
        for cluster in config.get("clusters") or []:
            cluster["cluster"]["server"] = self.url
        path = directory / f"kubeconfig-proxy-{self.port}"
        path.write_text(yaml.safe_dump(config))
        return path

    # ------------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()  # accepted during a stall: connected upstream only later
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # the proxy closing (asyncio's server callbacks must not end cancelled)
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    self._writers.discard(w)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(CHUNK)
                await self._flowing.wait()  # stalled meanwhile: hold the chunk
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()  # one side gone: the other goes too (TLS has no half-close)
