"""Bad input of every kind: config files, register words from a meter, raw Modbus replies.

The promise for each: a clear error of the bridge's own kind (``ConfigError``, ``DecodeError``,
``ModbusError``) or a correct result; never a crash, never a wrong or non-finite value.
MQTT command payloads are fuzzed in tests/test_commands.py (parser) and
tests/test_commands_e2e.py (through the broker to a simulated meter).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import Config, load_config, parse_config
from bridge.core.runtime import MeterRuntime, apply_setup, ingest, state_of
from bridge.errors import ConfigError, DecodeError, ModbusError
from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import decode_setup, measurement_plan
from bridge.modbus.client import BusClient
from bridge.modbus.links import TcpLink
from bridge.model.codec import decode_block
from bridge.model.codec import values_by_key as state_values
from tests import rtu

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TEXT = (ROOT / "config.example.yaml").read_text()
EXAMPLE = yaml.safe_load(EXAMPLE_TEXT)
ENV = {"MQTT_PASSWORD": "secret"}
SYSTEM_TYPES = [10, 11, 12, 31, 40]
MEASUREMENT_KEYS = {r.key for r in s4k.MEASUREMENT_ROWS}

# -- config files ---------------------------------------------------------------------------------

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "${UNSET}", "${MQTT_PASSWORD}", "a/b", "#", "+", "x" * 300, "ü",
                     "/dev/null", "1e309", "0x10", "-1"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                          max_size=2))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


PATHS = _paths(EXAMPLE)
FIXTURE_REUSE = HealthCheck.function_scoped_fixture  # tmp_path: each case overwrites its file


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> None:
    for step in path[:-1]:
        doc = doc[step]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


def _accept_or_config_error(load: Any) -> Config | None:
    try:
        config = load()
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError must say what is wrong"
        return None
    assert isinstance(config, Config)
    return config


def test_the_example_itself_is_accepted() -> None:
    assert _accept_or_config_error(lambda: parse_config(copy.deepcopy(EXAMPLE), env=ENV))


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), ODD_VALUES, st.booleans()),
                min_size=1, max_size=3))
def test_mutated_config_documents(edits: list[tuple[tuple[Any, ...], Any, bool]]) -> None:
    doc = copy.deepcopy(EXAMPLE)
    for path, value, delete in edits:
        # An earlier edit may have removed or replaced the parent.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set(doc, path, value, delete)
    _accept_or_config_error(lambda: parse_config(doc, env=ENV))


@settings(max_examples=500, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.integers(0, len(EXAMPLE_TEXT) - 1), st.binary(min_size=1, max_size=8),
       st.booleans())
def test_damaged_config_files(tmp_path: Path, at: int, junk: bytes, replace: bool) -> None:
    """Bytes inserted into or overwriting the example file: YAML errors, wrong types, bad
    UTF-8 all end in a ConfigError that names the file's problem."""
    raw = EXAMPLE_TEXT.encode()
    raw = raw[:at] + junk + raw[at + (len(junk) if replace else 0):]
    path = tmp_path / "config.yaml"
    path.write_bytes(raw)
    _accept_or_config_error(lambda: load_config(path, env=ENV))


@settings(max_examples=300, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.binary(max_size=200))
def test_random_bytes_as_a_config_file(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(raw)
    assert _accept_or_config_error(lambda: load_config(path, env=ENV)) is None


# -- register words from a meter --------------------------------------------------------------

WORD = st.integers(0, 0xFFFF)
CONFIG_COUNT = PROFILE.config_block.count
METER_CFG = parse_config({"mqtt": {"host": "127.0.0.1"}, "buses": [
    {"name": "b", "transport": "tcp", "host": "127.0.0.1", "meters": [{"name": "m", "unit": 1}]}]},
    env={}).buses[0].meters[0]


@st.composite
def meter_answers(draw: st.DrawFn) -> tuple[list[int], list[list[int]]]:
    setup = draw(st.lists(WORD, min_size=CONFIG_COUNT, max_size=CONFIG_COUNT))
    if draw(st.booleans()):  # a plausible wiring, so the measurement blocks get decoded
        setup[130 - 129] = draw(st.sampled_from(SYSTEM_TYPES))
    blocks = draw(st.lists(st.lists(WORD, min_size=125, max_size=125), min_size=3, max_size=3))
    return setup, blocks


@settings(max_examples=1500, deadline=None)
@given(meter_answers())
def test_any_register_words_give_valid_finite_values_or_an_error(
        answers: tuple[list[int], list[list[int]]]) -> None:
    setup_words, block_words = answers
    try:
        setup = decode_setup(setup_words)
    except DecodeError:
        return
    assert setup.system_type in SYSTEM_TYPES
    rt = MeterRuntime(METER_CFG, "m", PROFILE)
    apply_setup(rt, setup)
    for plan in (measurement_plan(setup.system_type, (), include_uncertain=True),
                 rt.full_blocks):
        decoded: dict[str, Any] = {}
        try:
            for block, words in zip(plan, block_words, strict=False):
                decoded.update(state_values(decode_block(block, words[:block.count],
                                                         setup.scales)))
        except DecodeError:
            continue
        ingest(rt, decoded, full=True)
    state = state_of(rt)
    measured = {k for k in state if k in MEASUREMENT_KEYS}
    # Only quantities valid for the wiring, and only finite numbers.
    assert measured <= rt.valid, measured - rt.valid
    for key, value in state.items():
        if isinstance(value, float):
            assert math.isfinite(value), (key, value)


# -- raw replies on the wire ----------------------------------------------------------------------

REPLIES = 400


def _reply(rng: random.Random, request: bytes) -> tuple[bytes, list[int] | None]:
    """A reply to ``request`` and the registers it carries when it is a proper answer."""
    unit, count = request[0], int.from_bytes(request[4:6], "big")
    words = [rng.randrange(0x10000) for _ in range(count)]
    good = rtu.read_response(unit, words)
    kind = rng.randrange(9)
    if kind <= 2:
        return good, words
    if kind == 3:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), None
    if kind == 4:  # one bit flipped anywhere (the CRC must catch it)
        i = rng.randrange(len(good))
        return good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + good[i + 1:], None
    if kind == 5:  # cut short
        return good[:rng.randrange(1, len(good))], None
    if kind == 6:  # a valid frame of the wrong length
        other_count = count + (1 if count == 1 else rng.choice([-1, 1]))
        other = [rng.randrange(0x10000) for _ in range(other_count)]
        return rtu.read_response(unit, other), None
    if kind == 7:  # a valid frame from another unit or with another function
        if rng.random() < 0.5:
            return rtu.read_response((unit % 247) + 1, words), None
        return rtu.with_crc(bytes([unit, 0x04, 2 * count]) + b"\0" * (2 * count)), None
    return rtu.exception_response(unit, 3, rng.choice([1, 2, 3, 4, 6])), None


async def test_random_replies_on_the_wire_give_the_right_registers_or_an_error() -> None:
    rng = random.Random(1234)
    expected: list[list[int] | None] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readexactly(8)
                reply, words = _reply(rng, request)
                expected.append(words)
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()  # the client hung up, or the test is over

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = BusClient(TcpLink("127.0.0.1", port, rtu=True, baudrate=115200), timeout=0.05,
                       retries=0)
    outcomes = {"right": 0, "error": 0, "wrong": 0}
    try:
        for i in range(REPLIES):
            count = rng.choice([1, 2, 10, 45, 90, 125])
            before = len(expected)
            try:
                registers = await client.read_registers(1 + i % 3, 256, count)
            except ModbusError:
                outcomes["error"] += 1
                continue
            # The answer to this request is the only one that may be taken.
            if len(expected) > before and registers == expected[before]:
                outcomes["right"] += 1
            else:
                outcomes["wrong"] += 1
    finally:
        client.close()
        server.close()
        await server.wait_closed()
    print(f"\nraw replies: {REPLIES} requests, {outcomes}")
    assert outcomes["wrong"] == 0, outcomes
    assert outcomes["right"] >= REPLIES // 5 and outcomes["error"] >= REPLIES // 3, outcomes
