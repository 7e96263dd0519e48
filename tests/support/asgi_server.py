"""An ASGI app served by a real uvicorn on 127.0.0.1, in a thread with its own event loop.

    with AsgiServer(app) as server:          # lifespan started, port chosen freely
        httpx.get(server.url + "/healthz")
        server.call(fake.finish_run, run_id)  # runs on the server's loop, returns the result

For clients that need a real socket (the MCP SDK's streamable HTTP client, the CLI as a
subprocess or in a pseudo-terminal). Objects the app uses (a fake store, its futures) belong to
the server's loop: change them through `call`, never from the test's own loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import uvicorn

from tests.support.processes import free_port

T = TypeVar("T")


class AsgiServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", start_timeout: float = 20) -> None:
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self._config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(self._config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._start_timeout = start_timeout
        self._error: BaseException | None = None

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"uvicorn did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {self._start_timeout} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the server's loop and return what it returned."""
        assert self._loop is not None, "not started"

        async def invoke() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=10)

    async def acall(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` for async tests: waits without blocking the test's own loop."""
        return await asyncio.to_thread(self.call, fn, *args, **kwargs)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
