"""Durable pulse totals: format, corruption detection, atomic save, start value (table-driven)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from bridge.errors import StoreError
from bridge.gpio import store

GOOD = store.encode(store.StoredTotal(123456, 10))


def test_round_trip_and_format() -> None:
    doc = json.loads(GOOD)
    assert set(doc) == {"version", "pulses", "wh_per_pulse", "sha256"}
    assert doc["version"] == store.STORE_VERSION
    assert store.decode(GOOD) == store.StoredTotal(123456, 10)


def resign(doc: dict[str, object]) -> bytes:
    """A well-formed file with a correct checksum over whatever ``doc`` holds."""
    import hashlib

    fields = {k: v for k, v in doc.items() if k != "sha256"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({**fields, "sha256": hashlib.sha256(canonical).hexdigest()}).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not JSON"),
    (GOOD[: len(GOOD) // 2], "not JSON"),                        # half-written
    (GOOD.replace(b"123456", b"923456"), "checksum mismatch"),    # a flipped digit
    (GOOD.replace(b'"sha256"', b'"sha257"'), "checksum mismatch"),
    (b"\xff\xfe garbage", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (resign({"version": 2, "pulses": 1, "wh_per_pulse": 10}), "unsupported version 2"),
    (resign({"version": 1, "pulses": -1, "wh_per_pulse": 10}), "bad pulse count -1"),
    (resign({"version": 1, "pulses": 1.5, "wh_per_pulse": 10}), "bad pulse count 1.5"),
    (resign({"version": 1, "pulses": True, "wh_per_pulse": 10}), "bad pulse count True"),
    (resign({"version": 1, "pulses": 1, "wh_per_pulse": 0}), "bad wh_per_pulse 0"),
    (resign({"version": 1, "pulses": 1}), "bad wh_per_pulse None"),
])
def test_corruption_is_detected(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        store.decode(data)


def test_load_reports_a_corrupt_file_by_name(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "main_pulses.json"
    path.write_bytes(GOOD[:20])
    with caplog.at_level(logging.WARNING):
        loaded = store.load(path)
    assert loaded.total is None
    assert loaded.problem is not None and str(path) in loaded.problem
    assert "corrupt" in loaded.problem
    assert str(path) in caplog.text


def test_load_reports_a_missing_file_by_name(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "nothing.json"
    loaded = store.load(path)
    assert loaded.total is None
    assert loaded.problem is not None and str(path) in loaded.problem
    assert str(path) in caplog.text


def test_save_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "p.json"  # the directory is created
    store.save(path, store.StoredTotal(1, 10))
    store.save(path, store.StoredTotal(2, 10))
    assert store.load(path).total == store.StoredTotal(2, 10)
    assert os.listdir(path.parent) == ["p.json"]


def test_a_stale_temp_file_from_a_crash_is_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    (tmp_path / ".p.json.tmp").write_bytes(b"half a fi")
    store.save(path, store.StoredTotal(5, 10))
    assert store.load(path).total == store.StoredTotal(5, 10)
    assert os.listdir(tmp_path) == ["p.json"]


def test_save_failure_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    path = blocker / "p.json"
    with pytest.raises(StoreError, match=str(path)):
        store.save(path, store.StoredTotal(1, 10))


@pytest.mark.parametrize(("dirty", "last", "now", "interval", "due"), [
    (False, None, 0, 1.0, False),
    (True, None, 0, 1.0, True),
    (True, 0, 999_999_999, 1.0, False),
    (True, 0, 1_000_000_000, 1.0, True),
    (False, 0, 10_000_000_000, 1.0, False),
    (True, 0, 400_000_000, 0.5, False),
    (True, 0, 500_000_000, 0.5, True),
])
def test_save_due(dirty: bool, last: int | None, now: int, interval: float, due: bool) -> None:
    assert store.save_due(dirty, last, now, interval) is due


@pytest.mark.parametrize(("stored", "meter", "retained", "pulses", "source", "warns"), [
    (100, None, None, 100, "store", False),
    (100, 90, 95, 100, "store", False),           # never lower than the store
    (100, 120, None, 120, "meter", True),         # the meter counted while we were down
    (100, None, 130, 130, "retained", True),      # the broker saw more than the file holds
    (None, 50, 40, 50, "meter", True),            # corrupt or missing file
    (None, None, 40, 40, "retained", True),
    (None, None, None, 0, "none", True),
    (0, None, None, 0, "store", False),
    (100, 100, 100, 100, "store", False),
])
def test_start_value(stored: int | None, meter: int | None, retained: int | None, pulses: int,
                     source: str, warns: bool) -> None:
    start = store.start_value(stored, meter, retained)
    assert (start.pulses, start.source, start.warning is not None) == (pulses, source, warns)
    assert start.pulses >= max(v for v in (stored, meter, retained, 0) if v is not None)


@pytest.mark.parametrize(("pulses", "from_wh", "to_wh", "expected"), [
    (1000, 10, 100, 100), (1001, 10, 100, 101), (5, 100, 10, 50), (0, 10, 1000, 0),
])
def test_pulses_for_weight_never_loses_energy(pulses: int, from_wh: float, to_wh: float,
                                              expected: int) -> None:
    converted = store.pulses_for_weight(pulses, from_wh, to_wh)
    assert converted == expected
    assert converted * to_wh >= pulses * from_wh


@pytest.mark.parametrize(("kwh", "wh", "pulses"), [
    (12.34, 10, 1234), (0.3, 100, 3), (70.0, 10000, 7), (0.0, 10, 0), (1e6, 1000, 1_000_000),
])
def test_pulses_from_kwh(kwh: float, wh: float, pulses: int) -> None:
    assert store.pulses_from_kwh(kwh, wh) == pulses
