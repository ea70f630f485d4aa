"""Values as published, and the rules every published value obeys (pure).

A value the meter reports as QNAN, NaN or infinity is never a number; an accumulator is never
published lower than its last published value unless the bridge knows the meter was reset (Home
Assistant would take the drop for a meter reset and count the whole total again).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from math import isfinite

from bridge.model.quantities import BY_KEY, published_decimals

Number = int | float
StateValue = Number | str | list[str]

#: Accumulators: the never-lower rule applies to these keys.
MONOTONIC = frozenset(q.key for q in BY_KEY.values() if q.monotonic)
#: Decimals published per key (:func:`~bridge.model.quantities.rounded`, looked up once).
_DECIMALS = {q.key: published_decimals(q) for q in BY_KEY.values()}


def is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True, slots=True)
class Dropped:
    key: str
    value: Number
    floor: Number
    reason: str


def sanitize(
    values: Mapping[str, Number | None],
    valid: Collection[str],
    floors: Mapping[str, Number],
    resets: Collection[str] = (),
) -> tuple[dict[str, Number], dict[str, Number], list[Dropped]]:
    """Turn decoded values into publishable ones.

    Keeps only valid keys with finite numbers, floats rounded to the published resolution
    (:func:`~bridge.model.quantities.rounded`); an accumulator lower than its last published
    value (``floors``) is dropped and reported, unless the key is in ``resets`` (the bridge
    knows the meter was reset). Returns the clean values, the new floors, and the drops.
    """
    clean: dict[str, Number] = {}
    new_floors = dict(floors)
    dropped: list[Dropped] = []
    for key, value in values.items():
        if value is None or key not in valid:
            continue
        if value.__class__ is float:  # the common case, checked without is_number's calls
            if not isfinite(value):
                continue
            decimals = _DECIMALS.get(key)
            if decimals is not None:
                value = round(value, decimals)
        elif not is_number(value):
            continue
        if key in MONOTONIC:
            floor = floors.get(key)
            if floor is not None and value < floor and key not in resets:
                dropped.append(Dropped(key, value, floor, "lower than the last published total"))
                continue
            new_floors[key] = value
        clean[key] = value
    return clean, new_floors, dropped
