"""How the bridge names what it publishes (pure): the one owner of ids and display names.

Every Home Assistant id of one bridge starts with ``series4000_<bridge_id>`` (so two bridges on
one broker never collide); each meter or input of its own is a device ``<prefix>_<name>``; a
device's display name is its configured ``display_name``, else its name made readable.
"""

from __future__ import annotations

from dataclasses import dataclass

PRODUCT_ID = "series4000"


@dataclass(frozen=True, slots=True)
class Naming:
    bridge_id: str = "main"

    @property
    def unique_prefix(self) -> str:
        return f"{PRODUCT_ID}_{self.bridge_id}"

    def node_id(self, name: str) -> str:
        """The Home Assistant device id of a meter or input called ``name``."""
        return f"{self.unique_prefix}_{name}"

    def unique_id(self, name: str, key: str) -> str:
        """The unique id of one entity (``key``) of the device called ``name``."""
        return f"{self.node_id(name)}_{key}"


def display_name(name: str, configured: str | None = None) -> str:
    """``main_panel`` -> ``Main panel``, unless the configuration names it."""
    return configured or name.replace("_", " ").capitalize()
