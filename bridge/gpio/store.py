"""Durable pulse totals: one small JSON file per pulse input, written atomically.

File format (version 1)::

    {"version": 1, "pulses": 123456, "wh_per_pulse": 10, "sha256": "<hex>"}

``sha256`` is taken over the other fields as canonical JSON (sorted keys, no spaces), so a
truncated, edited or bit-flipped file is detected rather than trusted.

:func:`save` replaces the file through :func:`bridge.files.write_atomic`: after a crash it holds
either the old or the new total, never half of one. :func:`save_due` is the pure "at most every
second" decision; the caller also saves at shutdown. :func:`load` never raises for a missing or
corrupt file: it logs a warning naming the file and returns the problem, and the caller picks
the start value with :func:`start_value`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import StoreError
from bridge.files import write_atomic

log = logging.getLogger(__name__)

STORE_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredTotal:
    pulses: int
    wh_per_pulse: float


@dataclass(frozen=True, slots=True)
class Loaded:
    """What :func:`load` found: a total, or why there is none."""

    total: StoredTotal | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class StartValue:
    pulses: int
    #: Which source gave the value: "store", "meter", "retained", or "none".
    source: str
    warning: str | None = None


def _canonical(fields: dict[str, object]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def encode(total: StoredTotal) -> bytes:
    fields: dict[str, object] = {"version": STORE_VERSION, "pulses": total.pulses,
                                 "wh_per_pulse": total.wh_per_pulse}
    digest = hashlib.sha256(_canonical(fields)).hexdigest()
    return json.dumps({**fields, "sha256": digest}).encode() + b"\n"


def decode(data: bytes) -> StoredTotal:
    """Parse and verify a stored total; ValueError says what is wrong."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    digest = doc.pop("sha256", None)
    if doc.get("version") != STORE_VERSION:
        raise ValueError(f"unsupported version {doc.get('version')!r}")
    if digest != hashlib.sha256(_canonical(doc)).hexdigest():
        raise ValueError("checksum mismatch")
    pulses, wh = doc.get("pulses"), doc.get("wh_per_pulse")
    if not isinstance(pulses, int) or isinstance(pulses, bool) or pulses < 0:
        raise ValueError(f"bad pulse count {pulses!r}")
    if (not isinstance(wh, (int, float)) or isinstance(wh, bool) or not math.isfinite(wh)
            or wh <= 0):
        raise ValueError(f"bad wh_per_pulse {wh!r}")
    return StoredTotal(pulses, wh)


def load(path: Path) -> Loaded:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = f"no stored pulse total in {path} (first start, or the file was removed)"
    except OSError as exc:
        problem = f"cannot read the stored pulse total {path}: {exc.strerror or exc}"
    else:
        try:
            return Loaded(decode(data))
        except ValueError as exc:
            problem = f"the stored pulse total {path} is corrupt ({exc}); it is not used"
    log.warning("%s", problem)
    return Loaded(None, problem)


def save(path: Path, total: StoredTotal) -> None:
    """Replace the file atomically and durably; StoreError names the file on failure."""
    try:
        write_atomic(path, encode(total), mode=0o644)
    except OSError as exc:
        raise StoreError(f"cannot save the pulse total to {path}: {exc.strerror or exc}") from exc


def save_due(dirty: bool, last_save_ns: int | None, now_ns: int,
             min_interval_s: float = 1.0) -> bool:
    """Whether to save now: something changed and the last save is ``min_interval_s`` old."""
    if not dirty:
        return False
    return last_save_ns is None or now_ns - last_save_ns >= min_interval_s * 1e9


def pulses_for_weight(pulses: int, from_wh: float, to_wh: float) -> int:
    """A total counted at ``from_wh`` per pulse in pulses of ``to_wh``, never less energy."""
    return math.ceil(pulses * from_wh / to_wh - 1e-9)


def pulses_from_kwh(energy_kwh: float, wh_per_pulse: float) -> int:
    """Pulses behind a published energy value (itself pulses x weight / 1000)."""
    return max(0, round(energy_kwh * 1000 / wh_per_pulse))


def start_value(stored: int | None, meter: int | None = None,
                retained: int | None = None) -> StartValue:
    """The count to start from: the highest trustworthy source, never lower than any of them.

    ``stored`` is the store file's total (None if missing or corrupt), ``meter`` the meter's own
    pulse counter (registers 43-44) when it is known and counts the same closures, ``retained``
    the pulse count of the last retained MQTT state when known.
    """
    sources = {"store": stored, "meter": meter, "retained": retained}
    known = {name: value for name, value in sources.items() if value is not None and value >= 0}
    if not known:
        return StartValue(0, "none", "no stored total, meter counter or retained value: "
                                     "counting from 0")
    source = max(known, key=lambda name: known[name])
    warning = None
    if stored is None:
        warning = f"no stored total: starting from the {source} value {known[source]}"
    elif known[source] > stored:
        warning = (f"the {source} value {known[source]} is higher than the stored total "
                   f"{stored} (pulses counted while the bridge was not saving): starting there")
    return StartValue(known[source], source, warning)
