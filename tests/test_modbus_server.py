"""The bridge's Modbus TCP server, read and written by clients nobody here wrote (pymodbus's
client, mbpoll), in front of the real service, a real broker and simulated meters."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from bridge.app.service import Service
from bridge.meters.series4000 import points as s4k
from bridge.model import codec
from bridge.model.quantities import published_decimals, quantity
from bridge.sim.broker import Broker, free_port
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_commands import valid_oracle

RESULT = "series4000/main/result"
FLOAT_ADDRESS, FLOAT_COUNT = 256, 90  # registers 257-346


def meter_cfg(**extra: Any) -> dict[str, Any]:
    return {"name": "main", "unit": 1, "poll_interval": 30, "config_interval": 30, **extra}


@contextlib.asynccontextmanager
async def bridge(broker: Broker, sim_port: int, tmp_path: Path, meters: list[dict[str, Any]],
                 **server: Any) -> AsyncIterator[tuple[Service, int]]:
    port = free_port()
    cfg = bridge_config(broker.port, [tcp_bus(sim_port, meters)], tmp_path,
                        modbus_server={"host": "127.0.0.1", "port": port, **server})
    async with running(cfg) as service:
        yield service, port


async def online(service: Service, wait_until: Any) -> None:
    await wait_until(lambda: all(rt.online and rt.polls for p in service.pollers
                                 for rt in p.meters.values()), 15, "meters online")


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert await modbus.connect()
    try:
        yield modbus
    finally:
        modbus.close()


def image_words(sim: Any, unit: int, first_reg: int, count: int) -> list[int]:
    image = sim.meters[unit].registers()
    return [image.get(first_reg + i, 0) for i in range(count)]


def mbap_read(transaction: int, address: int, count: int, unit: int = 1) -> bytes:
    """A Modbus TCP read of holding registers, as bytes on the wire."""
    pdu = bytes([3]) + address.to_bytes(2, "big") + count.to_bytes(2, "big")
    return transaction.to_bytes(2, "big") + bytes(2) + (len(pdu) + 1).to_bytes(2, "big") + \
        bytes([unit]) + pdu


def exception_code(response: Any) -> int | None:
    return response.exception_code if isinstance(response, ExceptionResponse) else None


async def test_fresh_cache_answers_without_touching_the_bus(broker: Broker, sim_factory: Any,
                                                             tmp_path: Path,
                                                             wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    async with bridge(broker, sim_port, tmp_path, [meter_cfg()], max_age_s=60) as (svc, port):
        await online(svc, wait_until)
        before = sim.requests
        async with client(port) as c1, client(port) as c2:
            for _ in range(50):
                for modbus in (c1, c2):
                    answer = await modbus.read_holding_registers(FLOAT_ADDRESS,
                                                                 count=FLOAT_COUNT, device_id=1)
                    assert answer.registers == image_words(sim, 1, 257, FLOAT_COUNT)
            energy = await c1.read_input_registers(FLOAT_ADDRESS, count=2, device_id=1)
            assert energy.function_code == 4
            assert c1.convert_from_registers(energy.registers, c1.DATATYPE.FLOAT32) == \
                pytest.approx(1234.5)
        # Two requests in one segment: both answered, in order (transaction ids 7 and 8).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(mbap_read(7, FLOAT_ADDRESS, 2) + mbap_read(8, FLOAT_ADDRESS + 2, 2))
        answers = [await asyncio.wait_for(reader.readexactly(13), 5) for _ in range(2)]
        assert [a[:2] for a in answers] == [b"\x00\x07", b"\x00\x08"]
        assert answers[0][9:] == b"".join(w.to_bytes(2, "big")
                                          for w in image_words(sim, 1, 257, 2))
        writer.close()
        assert sim.requests == before  # 103 reads, not one request on the bus
        assert svc.share is not None and svc.share.bus_reads == 0
        assert svc.share.cache_hits == 103


async def test_stale_cache_costs_one_read_shared_by_all_waiting(
        broker: Broker, sim_factory: Any, tmp_path: Path, wait_until: Any) -> None:
    sim = sim_factory([1], 10, frozen=True)  # 1-phase: phases B and C read QNAN
    _, sim_port = await sim.serve_tcp()
    async with bridge(broker, sim_port, tmp_path, [meter_cfg()], max_age_s=0.2,
                      passthrough_reads_per_s=50) as (svc, port):
        await online(svc, wait_until)
        await asyncio.sleep(0.3)  # the poller's read is older than max_age_s now
        before = sim.requests
        clients = [AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
                   for _ in range(5)]
        for modbus in clients:
            assert await modbus.connect()
        answers = await asyncio.gather(*(m.read_holding_registers(
            FLOAT_ADDRESS, count=FLOAT_COUNT, device_id=1) for m in clients))
        for modbus in clients:
            modbus.close()
        assert sim.requests - before == 1  # one read on the bus for five clients
        expected = image_words(sim, 1, 257, FLOAT_COUNT)
        assert all(a.registers == expected for a in answers)
        # Exactly as the meter sent them: phase C's power is QNAN.
        offset = next(r.reg for r in s4k.FLOAT_BLOCK if r.key == "power_c_w") - 257
        assert tuple(answers[0].registers[offset:offset + 2]) == codec.QNAN_FLOAT_WORDS


async def test_refusals(broker: Broker, sim_factory: Any, tmp_path: Path,
                        wait_until: Any) -> None:
    sim = sim_factory([1, 2], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    meters = [meter_cfg(), meter_cfg(name="sub", unit=2, server_unit=12, poll_interval=0.3)]
    async with bridge(broker, sim_port, tmp_path, meters) as (svc, port):
        await online(svc, wait_until)
        async with client(port) as modbus:
            unknown = await modbus.read_holding_registers(FLOAT_ADDRESS, count=2, device_id=2)
            assert exception_code(unknown) == 0x0A  # unit 2 is served as 12
            served = await modbus.read_holding_registers(FLOAT_ADDRESS, count=2, device_id=12)
            assert served.registers == image_words(sim, 2, 257, 2)
            outside = await modbus.read_holding_registers(199, count=2, device_id=1)
            assert exception_code(outside) == 0x02
            straddling = await modbus.read_holding_registers(340, count=10, device_id=1)
            assert exception_code(straddling) == 0x02
            coils = await modbus.read_coils(0, count=1, device_id=1)
            assert exception_code(coils) == 0x01
            info = await modbus.read_device_information(device_id=1)
            assert info.information[0] == b"Leviton"
            sim.meters[2].alive = False
            await wait_until(lambda: not svc.pollers[0].meters["sub"].online, 15, "offline")
            offline = await modbus.read_holding_registers(FLOAT_ADDRESS, count=2, device_id=12)
            assert exception_code(offline) == 0x0B
            # The server and the other meter carry on.
            ok = await modbus.read_holding_registers(FLOAT_ADDRESS, count=2, device_id=1)
            assert ok.registers == image_words(sim, 1, 257, 2)


async def test_writes_go_through_the_command_path(broker: Broker, sim_factory: Any,
                                                  tmp_path: Path, wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    async with recorder(broker.port, (RESULT,)) as rec, \
            bridge(broker, sim_port, tmp_path, [meter_cfg(allow_writes=True)]) as (svc, port):
        await online(svc, wait_until)
        async with client(port) as modbus:
            ok = await modbus.write_register(130, 200, device_id=1)  # ct_primary_a
            assert not ok.isError() and sim.meters[1].registers()[131] == 200
            msg = await rec.wait_message(RESULT)
            assert msg.json() == {"setting": "ct_primary_a", "requested": "200", "ok": True,
                                  "value": 200, "error": None}
            # Read back at once: the cache holds the set-up as read back after the write.
            assert (await modbus.read_holding_registers(130, count=1, device_id=1)
                    ).registers == [200]
            writes = len(sim.write_log)
            invalid = await modbus.write_register(130, 0, device_id=1)
            assert exception_code(invalid) == 0x03
            refused = await rec.wait_for(
                lambda r: next((m.json() for m in r.on(RESULT) if not m.json()["ok"]), None),
                5, "the refusal's result")
            assert refused["setting"] == "ct_primary_a" and "must be 1..32000" in \
                refused["error"]
            pt = await modbus.write_registers(132, [150], device_id=1)  # pt_ratio 1.50
            assert not pt.isError() and sim.meters[1].registers()[133] == 150
            writes += 1
            assert exception_code(await modbus.write_register(134, 5, device_id=1)) == 0x01
            assert exception_code(await modbus.write_register(128, 1, device_id=1)) == 0x03
            assert exception_code(await modbus.write_register(7, 1, device_id=1)) == 0x01
            assert exception_code(await modbus.write_register(400, 1, device_id=1)) == 0x02
            assert len(sim.write_log) == writes  # nothing refused reached the meter
            reset = await modbus.write_register(128, 16498, device_id=1)
            assert not reset.isError() and sim.write_log[-1].values == [16498]


async def test_writes_disabled_answer_01_and_write_nothing(
        broker: Broker, sim_factory: Any, tmp_path: Path, wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    async with recorder(broker.port, (RESULT,)) as rec, \
            bridge(broker, sim_port, tmp_path, [meter_cfg()]) as (svc, port):
        await online(svc, wait_until)
        async with client(port) as modbus:
            for reg, raw in ((131, 200), (130, 31), (129, 30078)):
                answer = await modbus.write_register(reg - 1, raw, device_id=1)
                assert exception_code(answer) == 0x01
        await rec.wait_for(lambda r: len(r.on(RESULT)) >= 3, 5, "three results")
        assert all("writes are disabled" in m.json()["error"] for m in rec.on(RESULT))
    assert sim.write_log == []


async def test_random_register_writes_are_validated_like_mqtt_commands(
        broker: Broker, sim_factory: Any, tmp_path: Path, wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    rng = random.Random(15)
    settings = [s for s in s4k.SETTINGS if s.key != "system_type"]
    edges = [0, 1, 9, 10, 82, 99, 100, 660, 1000, 32000, 32767, 32768, 65535]
    sent = [(s, rng.choice(edges) if rng.random() < 0.4 else rng.randrange(65536))
            for s in (rng.choice(settings) for _ in range(300))]
    async with bridge(broker, sim_port, tmp_path, [meter_cfg(allow_writes=True)]) as (svc, port):
        await online(svc, wait_until)
        codes: list[int | None] = []
        async with client(port) as modbus:
            for setting, raw in sent:
                codes.append(exception_code(await modbus.write_register(setting.reg - 1, raw,
                                                                        device_id=1)))
    assert set(codes) <= {None, 0x03, 0x04}
    by_reg = {s.reg: s.key for s in settings}
    for write in sim.write_log:
        assert valid_oracle(by_reg[write.reg], write.values[0], cross=False), write
    # Every value the command path accepts reaches the meter once; every other one never.
    assert len(sim.write_log) == sum(code != 0x03 for code in codes)
    assert any(code == 0x03 for code in codes) and any(code is None for code in codes)


async def test_limits(broker: Broker, sim_factory: Any, tmp_path: Path,
                      wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    async with bridge(broker, sim_port, tmp_path, [meter_cfg()], max_age_s=0.1,
                      passthrough_reads_per_s=1, max_connections=2,
                      idle_timeout_s=1) as (svc, port):
        await online(svc, wait_until)
        server = svc.modbus_server
        assert server is not None
        async with client(port) as modbus:
            before = sim.requests
            answers = [await modbus.read_holding_registers(reg, count=2, device_id=1)
                       for reg in range(0, 20, 2)]  # integer registers: never cached
            busy = [a for a in answers if exception_code(a) == 0x06]
            assert len(busy) >= 8  # one pass-through a second for this connection
            assert sim.requests - before == len(answers) - len(busy)
        await wait_until(lambda: not server.clients, 5, "the client gone")
        # A third connection beyond the limit of two is closed at once; idle ones later.
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        assert await asyncio.wait_for(conns[2][0].read(), 5) == b""
        assert len(server.clients) == 2
        for reader, _ in conns[:2]:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed when idle
        await wait_until(lambda: not server.clients, 5, "idle clients closed")
        for _, writer in conns:
            writer.close()
        # Bad frames cost the sender, never the server.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x01\x00\x00\x00\x02\x01\x63" + bytes(300))
        await writer.drain()
        writer.close()
        async with client(port) as modbus:
            ok = await modbus.read_holding_registers(FLOAT_ADDRESS, count=2, device_id=1)
            assert ok.registers == image_words(sim, 1, 257, 2)


async def test_mbpoll_reads_the_meter_through_the_bridge(broker: Broker, sim_factory: Any,
                                                         tmp_path: Path,
                                                         wait_until: Any) -> None:
    assert shutil.which("mbpoll"), "mbpoll is not installed (make test installs it from Debian)"
    sim = sim_factory([1], 40, frozen=True)
    _, sim_port = await sim.serve_tcp()
    async with bridge(broker, sim_port, tmp_path, [meter_cfg()], max_age_s=60) as (svc, port):
        await online(svc, wait_until)
        before = sim.requests
        # -r is mbpoll's 1-based reference, the manual's register number; -t 4:float -B reads
        # big-endian floats (high word first, the Series 4000 order).
        proc = await asyncio.create_subprocess_exec(
            "mbpoll", "-m", "tcp", "-a", "1", "-r", "257", "-c", "3", "-t", "4:float", "-B",
            "-1", "-p", str(port), "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        lines = dict(line.split(":", 1) for line in out.decode().splitlines()
                     if line.startswith("[2"))
        assert float(lines["[257]"]) == pytest.approx(1234.5)  # energy_kwh
        state_power = svc.pollers[0].meters["main"].values["power_w"]
        # kW; the state is rounded to the published resolution, the server relays the meter's words
        step = 10.0 ** -published_decimals(quantity("power_w"))
        assert float(lines["[261]"]) * 1000 == pytest.approx(state_power, rel=1e-6, abs=step)
        proc = await asyncio.create_subprocess_exec(
            "mbpoll", "-m", "tcp", "-a", "9", "-r", "257", "-c", "2", "-1", "-p", str(port),
            "127.0.0.1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode != 0 and b"Gateway path unavailable" in out + err
        assert sim.requests == before
