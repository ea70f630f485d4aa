"""Keeps Home Assistant's entities in step with what the bridge publishes.

Each device (a meter, or a pulse or alarm input of its own) is built from parts (the meter's
entities, a linked pulse input's entities...). An entity that disappears (the system type
changed, a setting became a control, a meter left the configuration) is removed in Home
Assistant: the next discovery message carries a removal marker for it, once.

What was announced before is known two ways. At every connection the bridge reads back the
retained discovery messages the broker holds for its own devices (:meth:`Announcer.reconcile`,
as Zigbee2MQTT does) and removes what it no longer has; the local record
(:mod:`bridge.homeassistant.record`) covers a broker that lost its retained messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from bridge.homeassistant import discovery
from bridge.homeassistant.discovery import DeviceInfo
from bridge.homeassistant.entities import Component
from bridge.homeassistant.record import DiscoveryRecord
from bridge.homeassistant.versions import for_version
from bridge.model.ha_release import HaVersion
from bridge.model.topics import Topics
from bridge.mqtt.hub import DISCOVERY, Hub

log = logging.getLogger(__name__)


class Announcer:
    def __init__(self, hub: Hub, topics: Topics, *, mode: str = "device", enabled: bool = True,
                 store: Path | None = None, own_prefix: str | None = None,
                 ha_version: HaVersion | None = None) -> None:
        self.hub = hub
        self.topics = topics
        self.mode = mode
        #: The Home Assistant release, when known: newer device classes are used from it on.
        self.ha_version = ha_version
        self.enabled = enabled
        self.record = DiscoveryRecord(store)
        #: Node ids of this bridge start with this (see :mod:`bridge.model.naming`).
        self.own_prefix = own_prefix
        self._announced: dict[str, dict[str, str]] = self.record.load()
        #: Node ids the configuration has (set by :meth:`forget_others`).
        self._keep: set[str] | None = None
        self._devices: dict[str, tuple[DeviceInfo, list[str], str]] = {}
        self._parts: dict[str, dict[str, dict[str, Component]]] = {}
        #: Component topics already cleared (component mode), so removals are sent once.
        self._cleared: set[str] = set()
        self.announcements = 0

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
        current = for_version(self.components(node_id), self.ha_version)
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
        # The removal markers just sent stay in the retained message; later messages need not
        # repeat them.
        now_announced = {k: c.platform for k, c in current.items()}
        if now_announced != announced or self.record.unsaved:
            self._announced[node_id] = now_announced
            self.record.save(self._announced)
        if removed:
            log.info("%s: removing %d entities from Home Assistant (%s)", node_id,
                     len(removed), ", ".join(sorted(removed)))
        return True

    def forget_others(self, keep: Iterable[str]) -> list[str]:
        """Remove devices announced earlier that the configuration no longer has."""
        if not self.enabled:
            return []
        keep_set = set(keep)
        self._keep = keep_set
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
            self.record.save(self._announced)
        return gone

    def retry_record(self) -> None:
        """Write the local record again if an earlier write failed."""
        if self.record.unsaved:
            self.record.save(self._announced)

    # -- what the broker holds ----------------------------------------------------------------

    def reconcile(self, topic: str, payload: bytes) -> None:
        """A retained discovery message read back from the broker: clear it if it is a device
        of this bridge that the configuration no longer has, and remove in Home Assistant the
        components of a current device that the bridge no longer has."""
        if not self.enabled or not payload or self.own_prefix is None:
            return
        where = self._parse_config_topic(topic)
        if where is None:
            return
        node_id, key, platform = where
        if not node_id.startswith(self.own_prefix):
            return
        try:
            config = json.loads(payload)
        except ValueError:
            return
        if not isinstance(config, dict) or not self._is_ours(config):
            return
        if self._keep is not None and node_id not in self._keep:
            self.hub.clear(topic)
            self._announced.pop(node_id, None)
            log.info("removed %s from Home Assistant (no longer configured)", topic)
            return
        held = self._held_components(config, key, platform)
        current = self.components(node_id)
        stale = {k: p for k, p in held.items() if k not in current}
        if not stale:
            return
        known = self._announced.setdefault(node_id, {})
        if all(k in known for k in stale):
            return
        known.update(stale)
        if current:
            self.announce(node_id)

    def _parse_config_topic(self, topic: str) -> tuple[str, str | None, str | None] | None:
        prefix = self.topics.prefix + "/"
        if not topic.startswith(prefix) or not topic.endswith("/config"):
            return None
        parts = topic[len(prefix):].split("/")
        if self.mode == "device" and len(parts) == 3 and parts[0] == "device":
            return parts[1], None, None
        if self.mode == "component" and len(parts) == 4:
            return parts[1], parts[2], parts[0]
        return None

    def _is_ours(self, config: Mapping[str, object]) -> bool:
        """Published by a bridge on this base topic (its availability is ours)."""
        availability = config.get("availability")
        topics = {a.get("topic") for a in availability if isinstance(a, dict)} \
            if isinstance(availability, list) else set()
        return self.topics.bridge_availability in topics

    def _held_components(self, config: Mapping[str, object], key: str | None,
                         platform: str | None) -> dict[str, str]:
        """Component key -> platform of the entities a retained message still creates."""
        if key is not None and platform is not None:
            return {key: platform}
        comps = config.get("components")
        if not isinstance(comps, dict):
            return {}
        # A component given as its platform alone is a removal marker, not an entity.
        return {str(k): str(c.get("platform")) for k, c in comps.items()
                if isinstance(c, dict) and len(c) > 1 and c.get("platform")}

    def resend(self) -> int:
        """Send every device's discovery again (``bridge/set/resend_discovery``)."""
        return self.hub.republish((DISCOVERY,))
