"""A meter as a Home Assistant device: its device block and the entities its set-up gives it.

Used by the service and by ``print-discovery``, so what the command prints is what the service
publishes. Every meter hangs from the bridge's own device (``via_device``,
:mod:`bridge.homeassistant.bridge_device`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.config import BusConfig, MeterConfig, WebConfig
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.bridge_device import bridge_components, bridge_device
from bridge.homeassistant.discovery import DeviceInfo
from bridge.homeassistant.entities import (
    MeterContext,
    MeterTopics,
    components,
    meter_entities,
)
from bridge.meters.profile import MeterProfile
from bridge.model.naming import Naming, display_name
from bridge.model.topics import BRIDGE, Topics

#: The announcer part that holds a meter's own entities (inputs linked to it add theirs).
METER_PART = "meter"


def meter_context(meter: MeterConfig, system_type: int, valid: frozenset[str],
                  pulse_linked: bool = False) -> MeterContext:
    """What decides a configured meter's entities under its present wiring."""
    return MeterContext(system_type, valid, meter.allow_writes, meter.allow_resets, pulse_linked)


def location(bus: str, unit: int) -> str:
    """Where a meter is reached, as the device page shows it."""
    return f"bus {bus}, unit {unit}"


class MeterDevices:
    """Announces meters of one profile through an :class:`Announcer`."""

    def __init__(self, announcer: Announcer, topics: Topics, naming: Naming,
                 profile: MeterProfile) -> None:
        self.announcer = announcer
        self.topics = topics
        self.naming = naming
        self.profile = profile
        self.descriptions = meter_entities(profile)

    @property
    def bridge_node_id(self) -> str:
        return self.naming.node_id(BRIDGE)

    def announce_bridge(self, buses: Sequence[BusConfig], web: WebConfig | None = None) -> None:
        """The bridge's own device (before any meter, so that their ``via_device`` exists), with
        its figures for the configured buses."""
        node_id = self.bridge_node_id
        device = bridge_device(node_id, self.profile.manufacturer, web)
        self.announcer.set_device(device, [], self.topics.bridge_availability)
        self.announcer.set_part(node_id, METER_PART,
                                bridge_components(node_id, buses, self.topics))
        self.announcer.announce(node_id)

    def set_device(self, meter: MeterConfig, bus: str, firmware: str | None = None) -> str:
        """Describe the meter's device (before its first read: without firmware); returns its
        node id."""
        node_id = self.naming.node_id(meter.name)
        device = DeviceInfo(node_id, display_name(meter.name, meter.display_name),
                            self.profile.model, self.profile.manufacturer, sw_version=firmware,
                            hw_version=location(bus, meter.unit), suggested_area=meter.area,
                            via_device=self.bridge_node_id)
        self.announcer.set_device(
            device, [self.topics.bridge_availability, self.topics.availability(meter.name)],
            self.topics.state(meter.name))
        return node_id

    def announce(self, name: str, ctx: MeterContext) -> None:
        """Publish the meter's entities for its present set-up (if they changed)."""
        node_id = self.naming.node_id(name)
        topics = MeterTopics(self.topics.state(name), self.topics.result(name),
                              lambda key: self.topics.set(name, key))
        self.announcer.set_part(node_id, METER_PART, components(
            self.descriptions, ctx, lambda key: self.naming.unique_id(name, key), topics))
        self.announcer.announce(node_id)
