"""A meter as a Home Assistant device: its device block and the entities its set-up gives it.

Used by the service and by ``print-discovery``, so what the command prints is what the service
publishes.
"""

from __future__ import annotations

from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.discovery import DeviceInfo
from bridge.homeassistant.entities import (
    MeterContext,
    MeterTopics,
    components,
    meter_entities,
)
from bridge.meters.profile import MeterProfile
from bridge.model.naming import Naming, display_name
from bridge.model.topics import Topics

#: The announcer part that holds a meter's own entities (inputs linked to it add theirs).
METER_PART = "meter"


class MeterDevices:
    """Announces meters of one profile through an :class:`Announcer`."""

    def __init__(self, announcer: Announcer, topics: Topics, naming: Naming,
                 profile: MeterProfile) -> None:
        self.announcer = announcer
        self.topics = topics
        self.naming = naming
        self.profile = profile
        self.descriptions = meter_entities(profile)

    def set_device(self, name: str, configured_name: str | None,
                   firmware: str | None = None) -> str:
        """Describe the meter's device (before its first read: without firmware); returns its
        node id."""
        node_id = self.naming.node_id(name)
        device = DeviceInfo(node_id, display_name(name, configured_name), self.profile.model,
                            self.profile.manufacturer, sw_version=firmware)
        self.announcer.set_device(
            device, [self.topics.bridge_availability, self.topics.availability(name)],
            self.topics.state(name))
        return node_id

    def announce(self, name: str, ctx: MeterContext) -> None:
        """Publish the meter's entities for its present set-up (if they changed)."""
        node_id = self.naming.node_id(name)
        self.announcer.set_part(node_id, METER_PART, components(
            self.descriptions, ctx, lambda key: self.naming.unique_id(name, key),
            MeterTopics(self.topics.state(name), lambda key: self.topics.set(name, key))))
        self.announcer.announce(node_id)
