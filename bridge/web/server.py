"""The HTTP server: the status page, ``/api/status``, ``/api/events``, ``/metrics``.

One task owns it (:meth:`WebServer.run`). Handlers only read snapshots from the
:class:`~bridge.web.source.StatusSource`; a slow or stuck browser holds its own stream and
nothing else, so the bus tasks never wait for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from bridge.config import WebConfig
from bridge.web import events
from bridge.web.metrics import exposition, registry_for
from bridge.web.source import StatusSource

log = logging.getLogger(__name__)

#: Events are sent at most this often per client: live enough for a page, and a 63-meter bus
#: changes every meter every second, so each round costs a few milliseconds of the event loop.
EVENT_MIN_INTERVAL_S = 1.0
#: Frames are written in pieces of about this size, handing the loop back to the bus tasks in
#: between, so a large round never holds a bus task up for long.
EVENT_CHUNK_BYTES = 16384
#: With nothing new, a keep-alive comment this often (and the uptime moves on).
EVENT_IDLE_S = 5.0
#: When the port cannot be opened (taken by another program), try again this often.
LISTEN_RETRY_S = 30.0

_SOURCE = web.AppKey("source", StatusSource)
_STOP = web.AppKey("stop", asyncio.Event)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _peer(request: web.Request) -> str | None:
    remote = request.remote
    if remote is None:
        return None
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def guard(token: str | None, allowed_clients: list[str] | None) -> Any:
    """Refuse peers outside ``allowed_clients`` (403) and requests without the token (401)."""
    allowed = None if not allowed_clients else set(allowed_clients)
    expected = None if token is None else f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed is not None and _peer(request) not in allowed:
            raise web.HTTPForbidden(text="this address is not allowed\n")
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise web.HTTPUnauthorized(text="a bearer token is required\n",
                                           headers={"WWW-Authenticate": "Bearer"})
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware


def _page() -> bytes:
    return resources.files(__package__).joinpath("page.html").read_bytes()


async def _index(request: web.Request) -> web.StreamResponse:
    return web.Response(body=_page(), content_type="text/html", charset="utf-8", headers={
        # Everything is in the page itself; nothing may come from elsewhere.
        "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src data:"})


async def _status(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[_SOURCE].snapshot())


async def _history(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[_SOURCE].power_history())


async def _log(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[_SOURCE].log_records())


async def _events(request: web.Request) -> web.StreamResponse:
    source, stop = request.app[_SOURCE], request.app[_STOP]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    last: dict[str, Any] | None = None
    log_seq = 0
    with contextlib.suppress(ConnectionError):
        while not stop.is_set():
            snapshot = source.snapshot()
            changes = events.changes(last, snapshot)
            last = snapshot
            records = source.log_records(log_seq)
            if records:
                log_seq = records[-1]["seq"]
                changes.append(("log", records))
            if not changes:
                await response.write(events.KEEPALIVE)
            piece = bytearray()
            for name, data in changes:
                piece += events.frame(name, data)
                if len(piece) >= EVENT_CHUNK_BYTES:
                    await response.write(bytes(piece))
                    piece.clear()
                    await asyncio.sleep(0)
            if piece:
                await response.write(bytes(piece))
            await asyncio.sleep(EVENT_MIN_INTERVAL_S)
            if not stop.is_set():
                await source.wait_changed(EVENT_IDLE_S)
    return response


def make_app(source: StatusSource, token: str | None = None,
             allowed_clients: list[str] | None = None,
             stop: asyncio.Event | None = None) -> web.Application:
    app = web.Application(middlewares=[guard(token, allowed_clients)])
    app[_SOURCE] = source
    app[_STOP] = stop or asyncio.Event()
    registry = registry_for(source)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=exposition(registry),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app.router.add_get("/", _index)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/api/history", _history)
    app.router.add_get("/api/log", _log)
    app.router.add_get("/metrics", metrics)
    return app


class WebServer:
    def __init__(self, cfg: WebConfig, source: StatusSource) -> None:
        self.cfg = cfg
        self.source = source
        #: Set while the port is open.
        self.listening = asyncio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.cfg.port}/"

    async def run(self) -> None:
        """Serve until cancelled; a port that cannot be opened is retried, never fatal."""
        token = self.cfg.token.get_secret_value() if self.cfg.token else None
        closing = asyncio.Event()  # ends the event streams before the server shuts down
        allowed = None if self.cfg.allowed_clients is None else [
            str(address) for address in self.cfg.allowed_clients]
        app = make_app(self.source, token, allowed, closing)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            while True:
                site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
                try:
                    await site.start()
                except OSError as exc:
                    log.error("status page: cannot listen on %s:%d (%s); trying again in "
                              "%.0f s", self.cfg.host, self.cfg.port, exc.strerror or exc,
                              LISTEN_RETRY_S)
                    await asyncio.sleep(LISTEN_RETRY_S)
                    continue
                log.info("status page on %s", self.url)
                self.listening.set()
                await asyncio.Event().wait()  # until cancelled
        finally:
            self.listening.clear()
            closing.set()
            await runner.cleanup()
