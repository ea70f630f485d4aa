"""The bridge's picture of what the broker should hold, republished after every (re)connect.

A restarted broker without persistence has lost every retained message, and Home Assistant
needs discovery before states: the hub keeps the last retained payload of every topic in three
ordered groups (discovery, availability, state) and republishes them in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

DISCOVERY, AVAILABILITY, STATE = "discovery", "availability", "state"
_GROUPS = (DISCOVERY, AVAILABILITY, STATE)


class Publisher(Protocol):
    def publish(self, topic: str, payload: str, retain: bool = True, qos: int = 1) -> None: ...


class Hub:
    def __init__(self, publisher: Publisher | None = None) -> None:
        self.publisher = publisher
        self._retained: dict[str, dict[str, str]] = {g: {} for g in _GROUPS}
        #: Called for every publication (tests and benchmarks count messages here).
        self.observers: list[Callable[[str, str, bool], None]] = []

    def _send(self, topic: str, payload: str, retain: bool, qos: int = 1) -> None:
        for observer in self.observers:
            observer(topic, payload, retain)
        if self.publisher is not None:
            self.publisher.publish(topic, payload, retain=retain, qos=qos)

    def retain(self, group: str, topic: str, payload: str) -> None:
        """Publish retained and remember it; an empty payload clears the topic for good."""
        if payload == "":
            self._retained[group].pop(topic, None)
        else:
            self._retained[group][topic] = payload
        # States are superseded every poll and re-sent after every reconnect: QoS 0 spares a
        # round trip per message; discovery and availability keep QoS 1.
        self._send(topic, payload, True, 0 if group == STATE else 1)

    def clear(self, topic: str) -> None:
        """Remove a retained message someone else left on the broker."""
        self._send(topic, "", True)

    def send(self, topic: str, payload: str) -> None:
        """A non-retained message (command results)."""
        self._send(topic, payload, False)

    def get(self, group: str, topic: str) -> str | None:
        return self._retained[group].get(topic)

    def republish(self, groups: tuple[str, ...] = _GROUPS) -> int:
        count = 0
        for group in groups:
            for topic, payload in list(self._retained[group].items()):
                self._send(topic, payload, True, 0 if group == STATE else 1)
                count += 1
        return count

    def size(self) -> int:
        return sum(len(g) for g in self._retained.values())
