"""Bus links, the serial line's timing, and bus statistics (pure; no Modbus library here).

The links say where a bus is (a serial port, or a TCP gateway speaking Modbus TCP or carrying
RTU frames); the timing gives the inter-frame silence t3.5 each link needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.config import BusConfig

# ---------------------------------------------------------------------------------------------
# Links and timing


@dataclass(frozen=True, slots=True)
class SerialLink:
    device: str
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def describe(self) -> str:
        return f"{self.device} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True, slots=True)
class TcpLink:
    host: str
    port: int = 502
    #: RTU frames over a TCP socket (a transparent serial gateway) instead of Modbus TCP.
    rtu: bool = False
    #: Serial speed behind a transparent gateway, for the inter-frame silence.
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1

    def describe(self) -> str:
        kind = "rtu-over-tcp" if self.rtu else "tcp"
        return f"{kind} {self.host}:{self.port}"


Link = SerialLink | TcpLink


def link_for(bus: BusConfig) -> Link:
    """Where a configured bus is."""
    if bus.transport == "rtu":
        assert bus.device is not None
        return SerialLink(bus.device, bus.baudrate, bus.parity, bus.stopbits)
    assert bus.host is not None
    return TcpLink(bus.host, bus.port, rtu=bus.transport == "rtu_over_tcp",
                   baudrate=bus.baudrate, parity=bus.parity, stopbits=bus.stopbits)


def char_bits(parity: str, stopbits: int, bytesize: int = 8) -> int:
    """Bits on the wire per character: start + data + parity + stop."""
    return 1 + bytesize + (0 if parity.upper() == "N" else 1) + stopbits


def silence_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """The t3.5 inter-frame silence (Modbus over serial line, section 2.5.1.1)."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_bits(parity, stopbits) / baudrate


def char_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """Seconds one character takes on the wire."""
    return char_bits(parity, stopbits) / baudrate


def link_char_s(link: Link) -> float:
    """One character's wire time on the link's serial line (behind a gateway too); 0.0 for
    Modbus TCP, which has no serial line of its own."""
    if isinstance(link, TcpLink) and not link.rtu:
        return 0.0
    return char_s(link.baudrate, link.parity, link.stopbits)


def link_silence_s(link: Link) -> float:
    """t3.5 for RTU framing, on a serial port or tunnelled through a gateway; Modbus TCP
    frames carry their own length and need no silence."""
    if isinstance(link, TcpLink) and not link.rtu:
        return 0.0
    return silence_s(link.baudrate, link.parity, link.stopbits)


def meter_reaction_s(elapsed_s: float, request_chars: int, answer_chars: int, char_time_s: float,
                     silence: float) -> float:
    """The meter's reaction beyond t3.5: from the request written to the answer's last byte
    received, less both frames' wire time and the t3.5 the meter may wait to see the request
    end; never below 0 (a clock's jitter). It includes what an adapter or gateway adds, which
    holds the line all the same."""
    wire_s = (request_chars + answer_chars) * char_time_s
    return max(0.0, elapsed_s - wire_s - silence)


# ---------------------------------------------------------------------------------------------
# Statistics


@dataclass(slots=True)
class BusStats:
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    retries: int = 0
    reconnects: int = 0
    #: answers refused because more data came with or right after them (late or repeated frames)
    stray_frames: int = 0
    #: timeouts where bytes did arrive but no valid frame (a failed CRC or a broken frame)
    crc_errors: int = 0
    #: answers that were Modbus exception replies
    exceptions: int = 0
    #: frame bytes on the line, requests and answers (the line's busy share, with the baud rate)
    line_bytes: int = 0
    last_error: str | None = None
    latency_ms: float = 0.0  # exponentially weighted mean of successful transactions
    #: RTU lines: the meters' reaction beyond t3.5 (request written to the answer's last byte,
    #: less both frames' wire time and t3.5), exponentially weighted; None until measured
    reaction_ms: float | None = None
    busy_s: float = 0.0
    per_unit_errors: dict[int, int] = field(default_factory=dict)

    def record_ok(self, seconds: float) -> None:
        self.requests += 1
        self.busy_s += seconds
        ms = seconds * 1000.0
        self.latency_ms = ms if self.latency_ms == 0 else 0.9 * self.latency_ms + 0.1 * ms

    def record_reaction(self, seconds: float) -> None:
        ms = seconds * 1000.0
        self.reaction_ms = ms if self.reaction_ms is None else 0.9 * self.reaction_ms + 0.1 * ms
