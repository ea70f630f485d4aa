"""Command-line arguments shared by the verbs: addresses, unit lists, bus links, exit codes."""

from __future__ import annotations

import argparse

from bridge.modbus.links import Link, SerialLink, TcpLink

#: 3: the wiring check found an error or a warning (``check-wiring``).
EXIT_OK, EXIT_NO_ANSWER, EXIT_USAGE, EXIT_FINDINGS = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command line arguments (exit 2)."""


def parse_host_port(text: str, default_port: int = 502) -> tuple[str, int]:
    """``host:port``, ``host`` or ``[v6]:port``."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"{text!r}: missing ']' in IPv6 address")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"{text!r}: expected ':port' after ']'")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    if not host:
        raise UsageError(f"{text!r}: missing host")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise UsageError(f"{whole!r}: port must be a number 0..65535")
    return int(text)


def parse_units(text: str) -> list[int]:
    """``1,2,5-7`` -> [1, 2, 5, 6, 7]; every unit 1..247."""
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_text, _, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if hi_text else lo
        except ValueError:
            raise UsageError(f"units {text!r}: {part!r} is not a number or range") from None
        if not (1 <= lo <= 247 and 1 <= hi <= 247):
            raise UsageError(f"units {text!r}: {part!r} is outside 1..247")
        if lo > hi:
            raise UsageError(f"units {text!r}: {part!r} is a reversed range (write {hi}-{lo})")
        units.extend(range(lo, hi + 1))
    if not units:
        raise UsageError("no unit given")
    return units


def add_link_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", metavar="HOST:PORT", help="Modbus TCP")
    g.add_argument("--rtu-over-tcp", metavar="HOST:PORT",
                   help="RTU frames through a transparent Ethernet gateway")
    g.add_argument("--serial", metavar="DEVICE", help="RS-485 adapter, e.g. /dev/ttyUSB0")
    p.add_argument("--baudrate", type=int, default=19200,
                   help="serial speed, also behind a gateway (default %(default)s)")
    p.add_argument("--parity", choices=["N", "E", "O"], default="N",
                   help="none, even or odd (default %(default)s)")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1,
                   help="(default %(default)s)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per request")


def link_from_args(args: argparse.Namespace) -> Link:
    if args.serial:
        return SerialLink(args.serial, args.baudrate, args.parity, args.stopbits)
    if args.tcp:
        host, port = parse_host_port(args.tcp)
        return TcpLink(host, port)
    host, port = parse_host_port(args.rtu_over_tcp)
    return TcpLink(host, port, rtu=True, baudrate=args.baudrate, parity=args.parity,
                   stopbits=args.stopbits)
