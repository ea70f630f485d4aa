"""Who a meter says it is: the answer to function 0x2B, read by content (pure).

The Series 4000 manuals list the identification objects both as 0x00-0x02 (the Modbus standard:
vendor, product, revision) and as "0x01: Leviton, 0x02: Series 4000, 0x03: Vxx.yyy". A meter may
therefore number them either way, so the objects are taken in the order of their numbers from
the lowest, and the revision is recognised by its form ("V1.051", "1.051") rather than by its
number. Register 7001 gives the firmware when 0x2B is missing or carries no revision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bridge.meters.profile import Identity

#: The basic identification objects sit at 0x00-0x02, or 0x01-0x03 on meters numbering from 1.
_BASIC_OBJECT_IDS = range(0, 4)
_REVISION = re.compile(r"^[Vv]?\d+(\.\d+)+[A-Za-z]?$")


def looks_like_revision(text: str) -> bool:
    """``V1.051``, ``1.051``, ``V12.345`` (the form register 7001 is shown in)."""
    return bool(_REVISION.match(text.strip()))


def identity_from_objects(objects: Mapping[int, str]) -> Identity:
    """Vendor, product and revision from the basic objects, numbered from 0 or from 1.

    The texts are taken in object order; the one that reads as a revision is the firmware, the
    others are vendor then product. Empty texts count as absent.
    """
    texts = [objects[oid].strip() for oid in sorted(objects)
             if oid in _BASIC_OBJECT_IDS and objects[oid].strip()]
    revision = next((t for t in reversed(texts) if looks_like_revision(t)), None)
    names = [t for t in texts if t is not revision][:2]
    vendor = names[0] if names else None
    product = names[1] if len(names) > 1 else None
    return Identity(vendor, product, revision)


def with_firmware(identity: Identity, firmware: str | None) -> Identity:
    """``identity`` with the firmware from register 7001 when 0x2B gave none."""
    return Identity(identity.vendor, identity.product, identity.firmware or firmware)
