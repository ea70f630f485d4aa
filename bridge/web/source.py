"""What the web server needs from the bridge (the app implements it; the web never imports the
core)."""

from __future__ import annotations

from typing import Any, Protocol


class StatusSource(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """The whole status as JSON-able data (the ``/api/status`` answer)."""
        ...

    async def wait_changed(self, timeout: float) -> bool:
        """Wait until something was published or logged, at most ``timeout`` seconds; True
        when something changed."""
        ...

    def log_records(self, after: int = 0) -> list[dict[str, Any]]:
        """The log ring's records with a sequence number above ``after``, oldest first: each
        ``{"seq", "time", "level", "logger", "message"}``."""
        ...

    def power_history(self) -> dict[str, list[list[float]]]:
        """Per meter, ``[[unix_time_s, power_w], ...]`` over the last minutes, oldest first."""
        ...
