"""The Supervisor's services API: which broker the Mosquitto add-on offers, and its account.

``GET {base}/services/mqtt`` with ``Authorization: Bearer $SUPERVISOR_TOKEN`` answers
``{"result": "ok", "data": {"host", "port", "username", "password", "ssl", "protocol"}}``;
errors come as ``{"result": "error", "message": ...}`` with HTTP 400 (e.g. "Service not
enabled" when no broker add-on provides the service), 401 (bad token) or 403 (the add-on's
config.yaml does not list the service). Only the standard library is used: the add-on needs
one GET at start-up, not an HTTP client dependency.

Transient failures (the Supervisor not answering yet, a 5xx, no broker *yet* because the
Mosquitto add-on is still starting) are retried until ``wait_s`` has passed; an access error
is not, since waiting does not change it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from bridge.addon.options import Broker
from bridge.errors import BridgeError
from bridge.model.ha_release import parse_version

log = logging.getLogger(__name__)

DEFAULT_URL = "http://supervisor"


class SupervisorError(BridgeError):
    """The broker could not be learned from the Supervisor; ``str()`` says why and what to do."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class NoMqttService(SupervisorError):
    """No add-on provides the ``mqtt`` service (the Mosquitto broker is not installed/started)."""


def fetch_mqtt_service(base_url: str, token: str | None, timeout: float = 10.0,
                       wait_s: float = 30.0, retry_delay_s: float = 3.0,
                       sleep: Callable[[float], None] = time.sleep) -> Broker:
    """Ask the Supervisor for the broker; retry transient failures for up to ``wait_s``."""
    if not token:
        raise SupervisorError(
            "SUPERVISOR_TOKEN is not set: `python -m bridge.addon` runs inside the Home "
            "Assistant add-on; elsewhere use `python -m bridge run --config FILE`")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _fetch_once(base_url, token, timeout)
        except SupervisorError as exc:
            if not exc.transient or time.monotonic() + retry_delay_s > deadline:
                raise
            log.warning("%s; trying again in %.0f s", exc, retry_delay_s)
            sleep(retry_delay_s)


def _fetch_once(base_url: str, token: str, timeout: float) -> Broker:
    url = base_url.rstrip("/") + "/services/mqtt"
    status, body = _get(url, token, timeout)
    return _answer(url, status, body)


def _get(url: str, token: str, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                                   "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SupervisorError(f"cannot reach the Supervisor at {url}: {reason}",
                              transient=True) from None


def fetch_core_version(base_url: str, token: str | None, timeout: float = 5.0) -> str | None:
    """The Home Assistant release from ``GET {base}/core/info``, or None (with a warning) when
    the Supervisor does not say: discovery then keeps the description every release accepts.

    The answer is ``{"result": "ok", "data": {"version": "2025.6.1", ...}}``; info calls need
    no API role.
    """
    if not token:
        return None
    url = base_url.rstrip("/") + "/core/info"
    try:
        status, body = _get(url, token, timeout)
    except SupervisorError as exc:
        log.warning("%s; Home Assistant's release is unknown, newer device classes are not used",
                    exc)
        return None
    try:
        payload: Any = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = {}
    data = payload.get("data") if isinstance(payload, dict) else None
    version = data.get("version") if isinstance(data, dict) else None
    if status != 200 or not isinstance(version, str) or parse_version(version) is None:
        log.warning("no Home Assistant release in the answer to %s (HTTP %d); newer device "
                    "classes are not used", url, status)
        return None
    return version


def _answer(url: str, status: int, body: bytes) -> Broker:
    try:
        payload: Any = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = {}
    message = payload.get("message") if isinstance(payload, dict) else None
    said = f": {message}" if message else ""
    if status in (401, 403):
        raise SupervisorError(
            f"the Supervisor refused {url} (HTTP {status}{said}); the add-on needs "
            "`services: [mqtt:need]` in its config.yaml and a fresh start to get a new token")
    if status == 400 and message and "not enabled" in str(message).lower():
        raise NoMqttService(
            "the Supervisor has no MQTT broker to offer (no add-on provides the mqtt service): "
            "install and start the Mosquitto broker add-on, or set the add-on's mqtt option "
            "(host, username, password) to use another broker", transient=True)
    if status >= 500:
        raise SupervisorError(f"the Supervisor answered HTTP {status} for {url}{said}",
                              transient=True)
    if status != 200 or not isinstance(payload, dict) or payload.get("result") != "ok":
        raise SupervisorError(f"unexpected answer from {url} (HTTP {status}{said})")
    return _broker(url, payload.get("data"))


def _broker(url: str, data: Any) -> Broker:
    if not isinstance(data, dict) or not data.get("host"):
        raise SupervisorError(f"unexpected answer from {url}: no broker host in it")
    try:
        port = int(data.get("port") or 1883)
    except (TypeError, ValueError):
        raise SupervisorError(f"unexpected answer from {url}: port "
                              f"{data.get('port')!r} is not a number") from None
    username = data.get("username")
    password = data.get("password")
    return Broker(host=str(data["host"]), port=port,
                  username=str(username) if username else None,
                  password=str(password) if password else None,
                  ssl=bool(data.get("ssl", False)))
