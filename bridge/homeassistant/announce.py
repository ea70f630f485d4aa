"""Keeps Home Assistant's entities in step with what the bridge publishes.

Each device (a meter, or a pulse or alarm input of its own) is built from parts (the meter's
entities, a linked pulse input's entities...). Every key ever announced for a device is kept in
``state_dir/discovery.json``, so an entity that disappears (the system type changed, a setting
became a control, a meter left the configuration) is removed in Home Assistant even across a
restart of the bridge, and a retained message that Home Assistant reads later still carries the
removal.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from bridge.homeassistant import discovery
from bridge.homeassistant.discovery import DeviceInfo
from bridge.homeassistant.entities import Component
from bridge.model.topics import Topics
from bridge.mqtt.hub import DISCOVERY, Hub

log = logging.getLogger(__name__)


class Announcer:
    def __init__(self, hub: Hub, topics: Topics, *, mode: str = "device", enabled: bool = True,
                 store: Path | None = None) -> None:
        self.hub = hub
        self.topics = topics
        self.mode = mode
        self.enabled = enabled
        self.store = store
        self._announced: dict[str, dict[str, str]] = self._load()
        self._devices: dict[str, tuple[DeviceInfo, list[str], str]] = {}
        self._parts: dict[str, dict[str, dict[str, Component]]] = {}
        #: Component topics already cleared (component mode), so removals are sent once.
        self._cleared: set[str] = set()
        self.announcements = 0

    # -- persistence --------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, str]]:
        if self.store is None or not self.store.exists():
            return {}
        try:
            data = json.loads(self.store.read_text())
            return {str(n): {str(k): str(p) for k, p in c.items()} for n, c in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); stale entities may need removing by hand",
                        self.store, exc)
            return {}

    def _save(self) -> None:
        if self.store is None:
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.store.parent, prefix=".discovery-")
        with os.fdopen(fd, "w") as f:
            json.dump(self._announced, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.store)

    # -- devices ------------------------------------------------------------------------------

    def set_device(self, device: DeviceInfo, availability: Iterable[str],
                   state_topic: str) -> None:
        self._devices[device.node_id] = (device, list(availability), state_topic)

    def set_part(self, node_id: str, part: str, components: Mapping[str, Component]) -> None:
        self._parts.setdefault(node_id, {})[part] = dict(components)

    def components(self, node_id: str) -> dict[str, Component]:
        merged: dict[str, Component] = {}
        for comps in self._parts.get(node_id, {}).values():
            merged.update(comps)
        return merged

    def announce(self, node_id: str) -> bool:
        """Publish the device's discovery if it changed; True when something was sent."""
        if not self.enabled or node_id not in self._devices:
            return False
        device, availability, state_topic = self._devices[node_id]
        current = self.components(node_id)
        announced = self._announced.get(node_id, {})
        removed = discovery.removed_components(announced, current)
        if self.mode == "device":
            payload = discovery.encode(discovery.device_payload(
                device, current, removed, availability, state_topic))
            topic = self.topics.device_config(node_id)
            if self.hub.get(DISCOVERY, topic) == payload:
                return False
            self.hub.retain(DISCOVERY, topic, payload)
        else:
            payloads = discovery.component_payloads(device, current, removed, availability,
                                                    state_topic, self.topics)
            sent = False
            for topic, body in payloads.items():
                if body == "":
                    if topic in self._cleared:
                        continue
                    self._cleared.add(topic)
                elif self.hub.get(DISCOVERY, topic) == body:
                    continue
                self.hub.retain(DISCOVERY, topic, body)
                sent = True
            if not sent:
                return False
        self.announcements += 1
        merged = dict(announced)
        merged.update({k: c.platform for k, c in current.items()})
        if merged != announced:
            self._announced[node_id] = merged
            self._save()
        if removed:
            log.info("%s: removing %d entities from Home Assistant (%s)", node_id,
                     len(removed), ", ".join(sorted(removed)))
        return True

    def forget_others(self, keep: Iterable[str]) -> list[str]:
        """Remove devices announced earlier that the configuration no longer has."""
        if not self.enabled:
            return []
        keep_set = set(keep)
        gone = [n for n in self._announced if n not in keep_set]
        for node_id in gone:
            if self.mode == "device":
                self.hub.retain(DISCOVERY, self.topics.device_config(node_id), "")
            for key, platform in self._announced[node_id].items():
                if self.mode == "component":
                    self.hub.retain(DISCOVERY,
                                    self.topics.component_config(platform, node_id, key), "")
            del self._announced[node_id]
            log.info("removed device %s from Home Assistant (no longer configured)", node_id)
        if gone:
            self._save()
        return gone

    def resend(self) -> int:
        """Send every device's discovery again (``bridge/set/resend_discovery``)."""
        return self.hub.republish((DISCOVERY,))
