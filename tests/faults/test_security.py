"""Security: TLS with a client certificate and password auth, secrets kept out of every log,
no topic injection through names, writes only where allowed."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.sim.broker import Broker, free_port
from tests.conftest import ROOT, run_cli
from tests.service_helpers import running, tcp_bus

PASSWORD = "correct-horse-battery-staple-9431"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1, and a client certificate."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(d / "ca", ca_key, ca)
    for name, san in (("server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                      ("client", [x509.DNSName("bridge")])):
        key = _key()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write(d / name, key, cert)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Any:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "bridge", PASSWORD],
                   check=True, capture_output=True)
    port = free_port()
    listener = (f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                f"password_file {passwd}\ncafile {pki / 'ca.crt'}\n"
                f"certfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
                "require_certificate true\n")
    broker = Broker(port=port, extra_config=listener).start()
    try:
        yield broker, pki
    finally:
        broker.stop()


def tls_config(port: int, modbus_port: int, pki: Path, state: Path,
               password: str = PASSWORD, client_cert: bool = True) -> Any:
    tls: dict[str, Any] = {"ca_file": str(pki / "ca.crt")}
    if client_cert:
        tls.update(cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key"))
    return parse_config({
        "mqtt": {"host": "127.0.0.1", "port": port, "username": "bridge",
                 "password": password, "tls": tls},
        "buses": [tcp_bus(modbus_port, [{"name": "main", "unit": 1, "poll_interval": 0.5}])],
        "state_dir": str(state), "log_level": "debug"}, env={})


async def test_tls_client_certificate_and_password(tls_broker: Any, sim_factory: Any,
                                                   tmp_path: Path, caplog: Any) -> None:
    broker, pki = tls_broker
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    caplog.set_level(logging.DEBUG)
    async with running(tls_config(broker.port, port, pki, tmp_path)) as service:
        for _ in range(100):
            if service.link.connects and service.link.published > 5:
                break
            await asyncio.sleep(0.1)
        assert service.link.connects == 1 and service.link.published > 5
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(("password", "client_cert", "why"), [
    ("wrong-password", True, "not authorized"),
    (PASSWORD, False, ""),
])
async def test_tls_broker_refuses_bad_credentials(tls_broker: Any, sim_factory: Any,
                                                  tmp_path: Path, caplog: Any, password: str,
                                                  client_cert: bool, why: str,
                                                  wait_until: Any) -> None:
    broker, pki = tls_broker
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    caplog.set_level(logging.DEBUG)
    async with running(tls_config(broker.port, port, pki, tmp_path, password,
                                  client_cert)) as service:
        # Refused and reported at least once, with polls going on meanwhile.
        await wait_until(lambda: service.link._last_error is not None
                         and service.pollers[0].cycles > 0, 20, "a refused connection")
        assert service.link.connects == 0
        # The bus side keeps working while the broker refuses us.
        assert service.pollers[0].cycles > 0
    assert password not in caplog.text
    assert why.lower() in caplog.text.lower()


async def test_password_never_in_check_config_output(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"mqtt: {{host: 127.0.0.1, username: u, password: {PASSWORD}}}\n"
                    "buses: [{name: b, transport: tcp, host: 127.0.0.1, meters: "
                    "[{name: m, unit: 1}]}]\n")
    code, out, err = await run_cli("-vv", "check-config", str(path))
    assert code == 0 and PASSWORD not in out + err
    path.write_text(f"mqtt: {{host: 127.0.0.1, username: u, password: {PASSWORD}, "
                    "port: nope}\n")
    code, out, err = await run_cli("check-config", str(path))
    assert code == 2 and "mqtt.port" in err and PASSWORD not in out + err


async def test_password_never_in_run_logs(broker: Broker, sim_factory: Any,
                                          tmp_path: Path) -> None:
    """The whole service at debug level, including paho's own log, prints no secret."""
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    path = tmp_path / "c.yaml"
    path.write_text(
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, username: u, "
        "password: '${SECRET_PW}'}\n"
        f"buses: [{{name: b, transport: tcp, host: 127.0.0.1, port: {port}, meters: "
        "[{name: m, unit: 1, poll_interval: 0.5}]}]\n"
        f"state_dir: {tmp_path / 'state'}\nlog_level: debug\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "-vv", "run", "--config", str(path), cwd=str(ROOT),
        env={**os.environ, "SECRET_PW": PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[bytes] = []
    try:
        # Connected, then one more poll's worth of debug output: the log lines that could
        # carry the password (connect, subscribe, publish) have all been written by then.
        async with asyncio.timeout(30):
            while not any(b"MQTT connected" in line for line in seen):
                line = await proc.stdout.readline()
                assert line, b"".join(seen).decode()[-2000:]
                seen.append(line)
            while not any(b"series4000/m/state" in line for line in seen):
                line = await proc.stdout.readline()
                assert line, b"".join(seen).decode()[-2000:]
                seen.append(line)
        proc.terminate()
        rest, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = (b"".join(seen) + rest).decode()
    assert "MQTT connected" in text, text[-2000:]
    assert PASSWORD not in text


@pytest.mark.parametrize("name", ["a/b", "a+b", "a#", "main/set", "x y", "", "Main",
                                  "../etc", "a\x00b"])
def test_names_cannot_inject_topics(name: str) -> None:
    with pytest.raises(ConfigError):
        parse_config({"buses": [tcp_bus(502, [{"name": name, "unit": 1}])]}, env={})
    with pytest.raises(ConfigError):
        parse_config({"pulse_inputs": [{"name": name, "line": 1, "wh_per_pulse": 10}]},
                     env={})
