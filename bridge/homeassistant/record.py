"""The local record of what was announced: node id -> component key -> platform.

It lets the bridge remove entities and devices that disappeared while it was not running, even
from a broker that lost its retained messages. It is a fallback: at every connection the
announcer also reads back what the broker holds (see :mod:`bridge.homeassistant.announce`).
A record that cannot be written (disk full, read-only state directory) is logged once and
written again at the next change or :meth:`DiscoveryRecord.retry`; it never stops the bridge.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bridge.files import write_atomic

log = logging.getLogger(__name__)

Announced = dict[str, dict[str, str]]


class DiscoveryRecord:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        #: The last write failed; :meth:`retry` writes again.
        self.unsaved = False
        self._failing_since_logged = False

    def load(self) -> Announced:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(n): {str(k): str(p) for k, p in c.items()} for n, c in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); entities the bridge no longer has are removed "
                        "from what the broker holds", self.path, exc)
            return {}

    def save(self, announced: Announced) -> bool:
        """Write the record; False (logged once per failing period) when it cannot be."""
        if self.path is None:
            return True
        try:
            write_atomic(self.path, json.dumps(announced, sort_keys=True).encode("utf-8"),
                         mode=0o644)
        except OSError as exc:
            self.unsaved = True
            if not self._failing_since_logged:
                self._failing_since_logged = True
                log.warning("cannot write %s (%s); discovery goes on, and the record is written "
                            "again once that works", self.path, exc.strerror or exc)
            return False
        if self._failing_since_logged:
            log.info("%s written again", self.path)
        self.unsaved = False
        self._failing_since_logged = False
        return True
