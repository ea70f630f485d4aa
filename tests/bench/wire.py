"""Wire-time arithmetic of an RS-485 line: what a perfect master would achieve.

A benchmark reports bus utilisation as ideal / measured cycle time. The ideal is what the line
physically needs: every frame's bits at the baud rate, the meter's turnaround, and the two t3.5
silences around each response (after the request the meter must see the silence to know the frame
ended; after the response the master must wait it before talking again). Anything above that is
the master's or the meters' overhead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Above this speed the standard fixes t3.5 at 1.75 ms instead of 3.5 character times.
FIXED_SILENCE_ABOVE = 19200
FIXED_SILENCE_S = 0.00175

_FORMAT = re.compile(r"^\s*(\d+)\s+([5-8])([NEOnoe])([12])\s*$")


@dataclass(frozen=True, slots=True)
class LineFormat:
    """Baud rate and character format of a serial line, e.g. 19200 8N1 (10 bits a character)."""

    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @classmethod
    def parse(cls, text: str) -> LineFormat:
        """``"19200 8E1"`` -> LineFormat(19200, "E", 1, 8)."""
        match = _FORMAT.match(text)
        if not match:
            raise ValueError(f"not a line format like '19200 8N1': {text!r}")
        baud, size, parity, stop = match.groups()
        return cls(int(baud), parity.upper(), int(stop), int(size))

    @property
    def bits_per_char(self) -> int:
        """Start bit + data bits + parity bit (if any) + stop bits."""
        return 1 + self.bytesize + (0 if self.parity.upper() == "N" else 1) + self.stopbits

    def wire_s(self, nbytes: int) -> float:
        """Seconds that ``nbytes`` characters occupy the line."""
        return nbytes * self.bits_per_char / self.baudrate

    @property
    def t35_s(self) -> float:
        """The inter-frame silence (3.5 characters; 1.75 ms above 19200 baud)."""
        if self.baudrate > FIXED_SILENCE_ABOVE:
            return FIXED_SILENCE_S
        return 3.5 * self.bits_per_char / self.baudrate

    def describe(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity.upper()}{self.stopbits}"


def read_sizes(count: int) -> tuple[int, int]:
    """(request bytes, response bytes) of a 0x03/0x04 read of ``count`` registers."""
    if not 1 <= count <= 125:
        raise ValueError(f"a read covers 1..125 registers, not {count}")
    return 8, 5 + 2 * count


def ideal_transaction_s(request_bytes: int, response_bytes: int, line: LineFormat,
                        turnaround_s: float = 0.0) -> float:
    """Line time of one transaction done perfectly.

    With a response: request + t3.5 + response + t3.5. A meter only knows the request has ended
    after t3.5 of silence, so its turnaround (end of request to start of response) is at least
    t3.5; a longer turnaround takes the place of the first silence rather than adding to it.
    Without a response (a dead meter, a broadcast) only the request and one silence use the
    line; the master's timeout is its own choice and not counted.
    """
    if response_bytes <= 0:
        return line.wire_s(request_bytes) + line.t35_s
    return (line.wire_s(request_bytes) + max(turnaround_s, line.t35_s)
            + line.wire_s(response_bytes) + line.t35_s)


def ideal_wire_time(transactions: Iterable[tuple[int, int]], line: LineFormat,
                    turnaround_s: float = 0.0) -> float:
    """Sum of :func:`ideal_transaction_s` over (request bytes, response bytes) pairs."""
    return sum(ideal_transaction_s(req, resp, line, turnaround_s) for req, resp in transactions)


def utilisation(ideal_s: float, measured_s: float) -> float:
    """ideal / measured: 1.0 is a master that wastes no line time."""
    if measured_s <= 0:
        raise ValueError("measured time must be positive")
    return ideal_s / measured_s
