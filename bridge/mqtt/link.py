"""The MQTT edge: one connection, its will, reconnects, subscriptions, a bounded send queue.

Everything retained that the bridge publishes is kept by :class:`Hub` (the last payload per
topic, a bounded set), so after any reconnect, including to a restarted broker that lost every
retained message, the whole picture is published again: availability, discovery, states. While
disconnected nothing accumulates except a small bounded queue of non-retained messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt

from bridge.config import MqttConfig
from bridge.model.topics import OFFLINE, ONLINE

log = logging.getLogger(__name__)


class SocketNoise(logging.Filter):
    """Drops paho's error line for each failed socket read or write: the link reports a lost
    connection itself, once per distinct problem (``MqttLink._report``), and paho's line would
    come on top of it with each outage. paho's other errors (a callback that raised) pass."""

    NOISE = ("failed to receive on socket", "timeout on socket")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


#: The logger the MQTT client library writes to.
client_log = logging.getLogger("bridge.mqtt.client")
client_log.addFilter(SocketNoise())

#: Longest wait between connection attempts. Short on purpose: an attempt is one cheap TCP
#: connect, and after a long outage the states should be back seconds after the broker is.
RECONNECT_MAX_S = 5.0
#: Non-retained messages (command results) kept while disconnected; older ones are dropped.
MAX_QUEUED = 1000
#: Messages waiting to be sent while connected; past this the oldest are dropped (a broker that
#: cannot keep up must not make the bridge grow without bound).
MAX_SENDING = 20 * MAX_QUEUED


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: str
    retain: bool
    qos: int = 1


class MqttLink:
    """Owns the broker connection; other parts only call :meth:`publish`."""

    def __init__(self, config: MqttConfig, client_id: str, will_topic: str,
                 subscriptions: Sequence[str],
                 on_connect: Callable[[], None],
                 on_message: Callable[[str, bytes, bool], None],
                 read_back: Sequence[str] = (), read_back_s: float = 5.0) -> None:
        self.config = config
        self.client_id = client_id
        self.will_topic = will_topic
        self.subscriptions = list(subscriptions)
        #: Subscribed for ``read_back_s`` after every connection only: the retained messages
        #: the broker holds there are read once, then the subscription ends.
        self.read_back = list(read_back)
        self.read_back_s = read_back_s
        self.on_connect = on_connect
        self.on_message = on_message
        self.connected = False
        self.connects = 0
        self.published = 0
        self._queue: deque[Outgoing] = deque(maxlen=MAX_SENDING)
        self._wakeup = asyncio.Event()
        self._session_over = False
        self._last_error: str | None = None

    # -- API for the rest of the bridge ----------------------------------------------------

    def publish(self, topic: str, payload: str, retain: bool = True, qos: int = 1) -> None:
        if not self.connected and retain:
            return  # the hub republishes every retained topic on connect
        self._queue.append(Outgoing(topic, payload, retain, qos))
        self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- connection ----------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file and tls.key_file:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if tls.insecure:
            ctx.check_hostname = False
        return ctx

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        password = cfg.password.get_secret_value() if cfg.password else None
        return aiomqtt.Client(
            cfg.host, cfg.effective_port, username=cfg.username, password=password,
            identifier=self.client_id, keepalive=cfg.keepalive, timeout=10,
            will=aiomqtt.Will(self.will_topic, OFFLINE, qos=1, retain=True),
            tls_context=self._tls(), logger=client_log)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop``; then publish ``offline`` and disconnect cleanly."""
        backoff = 1.0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    backoff = 1.0
                    await self._session(client, stop)
            except* aiomqtt.MqttError as group:
                self._report(f"MQTT broker {self.config.host}:{self.config.effective_port}: "
                             f"{group.exceptions[0]}")
            except* OSError as group:  # TLS files, DNS
                self._report(f"MQTT broker {self.config.host}: {group.exceptions[0]}")
            finally:
                if self.connected and not stop.is_set():
                    log.warning("MQTT disconnected from %s", self.config.host)
                self.connected = False
                # Retained messages are republished from the hub; keep only the others.
                kept = [m for m in self._queue if not m.retain][-MAX_QUEUED:]
                self._queue.clear()
                self._queue.extend(kept)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stop.wait()
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _report(self, text: str) -> None:
        if text != self._last_error:  # one line per distinct problem, not one per retry
            log.error("%s (retrying)", text)
            self._last_error = text

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        # The read-back topics first: their retained messages then arrive before anything this
        # session republishes over them.
        for topic in [*self.read_back, *self.subscriptions]:
            await client.subscribe(topic, qos=1)
        await client.publish(self.will_topic, ONLINE, qos=1, retain=True)
        self.connected = True
        self.connects += 1
        self._last_error = None
        log.info("MQTT connected to %s:%s as %s", self.config.host,
                 self.config.effective_port, self.client_id)
        self.on_connect()
        async with asyncio.TaskGroup() as session:
            # A receiver or sender that fails (the connection is lost) ends the session.
            receiver = session.create_task(self._receive(client))
            sender = session.create_task(self._send(client))
            reader = session.create_task(self._end_read_back(client))
            await stop.wait()
            # One consumer of the queue at a time: let the sender finish its message.
            self._session_over = True
            self._wakeup.set()
            await asyncio.wait({sender}, timeout=3)
            await self._drain(client)
            await client.publish(self.will_topic, OFFLINE, qos=1, retain=True, timeout=5)
            for task in (receiver, sender, reader):
                task.cancel()

    async def _end_read_back(self, client: aiomqtt.Client) -> None:
        if not self.read_back:
            return
        await asyncio.sleep(self.read_back_s)
        for topic in self.read_back:
            await client.unsubscribe(topic)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = payload if isinstance(payload, bytes) else str(payload or "").encode()
            try:
                self.on_message(str(message.topic), raw, bool(message.retain))
            except Exception:  # a bad message must never end the connection
                log.exception("error handling message on %s", message.topic)

    async def _send(self, client: aiomqtt.Client) -> None:
        self._session_over = False
        while not self._session_over:
            while self._queue and not self._session_over:
                msg = self._queue[0]
                await client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
                self._queue.popleft()
                self.published += 1
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Send what is queued before going offline (bounded by a few seconds)."""
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(3):
                while self._queue:
                    msg = self._queue.popleft()
                    await client.publish(msg.topic, msg.payload, qos=msg.qos,
                                         retain=msg.retain)


async def watch(host: str, port: int, topic: str, on_message: Callable[[str, bytes], None],
                client_id: str) -> None:
    """A read-only subscriber until cancelled (the demo's live view); reconnects quietly."""
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier=client_id) as client:
                await client.subscribe(topic)
                async for message in client.messages:
                    payload = message.payload
                    raw = payload if isinstance(payload, bytes) else str(payload).encode()
                    on_message(str(message.topic), raw)
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)
