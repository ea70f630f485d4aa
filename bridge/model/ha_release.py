"""Home Assistant release numbers (``2025.6``, ``2025.6.1``, ``2025.7.0b3``) as (year, month)."""

from __future__ import annotations

import re

HaVersion = tuple[int, int]

_VERSION = re.compile(r"^(\d{4})\.(\d{1,2})(?:\.\d+)?(?:[.a-z]\w*)?$", re.IGNORECASE)


def parse_version(text: str) -> HaVersion | None:
    """(year, month) of a release number; None when ``text`` is not one."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return (year, month) if 1 <= month <= 12 else None
