"""``python -m bridge print-discovery``: the discovery messages, without publishing them.

The meters are described by the same :class:`~bridge.homeassistant.meters.MeterDevices` the
service announces them with; only the hub is a recorder instead of the broker.
"""

from __future__ import annotations

import json
from typing import TextIO

from bridge.config import Config
from bridge.errors import ModbusError
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.meters import MeterDevices, meter_context
from bridge.meters.profile import MeterProfile
from bridge.meters.series4000 import PROFILE
from bridge.modbus.client import BusClient
from bridge.modbus.links import link_for
from bridge.modbus.reader import read_once
from bridge.model.naming import Naming
from bridge.model.topics import Topics
from bridge.mqtt.hub import Hub


async def print_discovery(config: Config, system_type: int | None, out: TextIO,
                          profile: MeterProfile = PROFILE) -> int:
    topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
    sent: list[tuple[str, str]] = []
    hub = Hub()
    hub.observers.append(lambda topic, payload, retain: sent.append((topic, payload)))
    devices = MeterDevices(Announcer(hub, topics, mode=config.mqtt.discovery_mode,
                                     ha_version=config.mqtt.ha_version), topics,
                           Naming(config.bridge_id), profile)
    devices.announce_bridge(config.buses, config.web)
    failed = 0
    for bus in config.buses:
        client = BusClient(link_for(bus), timeout=bus.timeout, retries=bus.retries)
        try:
            for meter in bus.meters:
                firmware = None
                if system_type is None:
                    try:
                        reading = await read_once(client, meter.unit, profile)
                    except ModbusError as exc:
                        print(f"# {meter.name}: cannot read the meter ({exc}); use "
                              "--system-type to print without reading", file=out)
                        failed += 1
                        continue
                    st, valid = reading.setup.system_type, reading.valid
                    firmware = reading.identity.firmware
                else:
                    st, valid = system_type, profile.valid_keys(system_type)
                devices.set_device(meter, bus.name, firmware)
                linked = any(p.meter == meter.name for p in config.pulse_inputs)
                devices.announce(meter.name, meter_context(meter, st, valid, linked))
        finally:
            client.close()
    for topic, payload in sent:
        print(topic, file=out)
        print(json.dumps(json.loads(payload), indent=2) if payload else "(empty)", file=out)
    return 1 if failed else 0
