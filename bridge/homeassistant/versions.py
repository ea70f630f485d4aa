"""What discovery may use with the Home Assistant it talks to (pure).

The discovery is written for Home Assistant 2025.4 (checked against a real install by
``make test-ha``). Some entities have a better description on newer releases; those upgrades
are listed here with the release that brought them, and applied only when the bridge knows that
Home Assistant is at least that release (the add-on asks the Supervisor; the service has the
``mqtt.homeassistant_version`` option). Unknown means the 2025.4 description, which every
release since accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bridge.homeassistant.entities import Component
from bridge.model.ha_release import HaVersion

#: State key -> (device class, the first release that has it). Kvarh had no device class before
#: 2025.6 (a sensor with an unknown one is refused, so older releases get none).
NEWER_DEVICE_CLASSES: dict[str, tuple[str, HaVersion]] = {
    "reactive_energy_kvarh": ("reactive_energy", (2025, 6)),
}


def for_version(components: Mapping[str, Component],
                version: HaVersion | None) -> dict[str, Component]:
    """``components`` with the upgrades ``version`` supports (none when it is unknown)."""
    out = dict(components)
    if version is None:
        return out
    for key, (device_class, since) in NEWER_DEVICE_CLASSES.items():
        comp = out.get(key)
        if comp is not None and version >= since and "device_class" not in comp.config:
            out[key] = dataclasses.replace(comp, config={**comp.config,
                                                         "device_class": device_class})
    return out
