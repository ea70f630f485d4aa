"""MQTT topic names (a contract: the README's topic table) and command-topic parsing (pure)."""

from __future__ import annotations

from dataclasses import dataclass

BRIDGE = "bridge"
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    base: str = "series4000"
    prefix: str = "homeassistant"

    @property
    def bridge_availability(self) -> str:
        return f"{self.base}/{BRIDGE}/availability"

    @property
    def bridge_state(self) -> str:
        """The bridge's own figures (retained JSON; :mod:`bridge.core.bridge_state`)."""
        return f"{self.base}/{BRIDGE}/state"

    @property
    def set_wildcard(self) -> str:
        return f"{self.base}/+/set/+"

    @property
    def ha_status(self) -> str:
        return f"{self.prefix}/status"

    def availability(self, name: str) -> str:
        return f"{self.base}/{name}/availability"

    def state(self, name: str) -> str:
        return f"{self.base}/{name}/state"

    def set(self, name: str, setting: str) -> str:
        return f"{self.base}/{name}/set/{setting}"

    def result(self, name: str) -> str:
        return f"{self.base}/{name}/result"

    def device_config(self, node_id: str) -> str:
        return f"{self.prefix}/device/{node_id}/config"

    def component_config(self, platform: str, node_id: str, object_id: str) -> str:
        return f"{self.prefix}/{platform}/{node_id}/{object_id}/config"

    def parse_set(self, topic: str) -> tuple[str, str] | None:
        """``<base>/<name>/set/<setting>`` -> (name, setting); None for anything else."""
        head = f"{self.base}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or parts[1] != "set" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]
