"""An aiohttp application served from a thread of its own (its own event loop), so the pipeline's threads never wait
on it. The socket is bound in the constructor (an address in use raises ``OSError`` there; port 0 picks a free one,
see ``.port``); ``start`` returns once the server answers, ``close`` stops it. Subclasses add work to the loop's start
and end through ``on_startup`` / ``on_shutdown``."""
from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web


class AppThread:
    def __init__(self, app: web.Application, host: str, port: int, name: str):
        self.app, self.name = app, name
        try:
            self.sock = socket.create_server((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"the {name} cannot listen on {host}:{port} ({exc.strerror}); give --http-port "
                                     f"another port, or 0 for any free one") from None
        self.host, self.port = host, self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self):
        self.thread.start()
        if not self.started.wait(10.0):
            raise RuntimeError(f"the {self.name} did not start within 10 s")
        return self

    def close(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10.0)
            self.thread.join(timeout=5.0)
        else:
            self.sock.close()

    async def on_startup(self) -> None:
        """Runs in the server's loop once it listens."""

    async def on_shutdown(self) -> None:
        """Runs in the server's loop before it stops."""

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._startup())
        self.started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _startup(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        await self.on_startup()

    async def _shutdown(self) -> None:
        await self.on_shutdown()
        await self.runner.cleanup()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)
