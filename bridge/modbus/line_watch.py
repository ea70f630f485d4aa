"""What arrives on an RTU line, seen through pymodbus' trace hooks (the client's stray-frame and
t3.5 bookkeeping, and the line's byte counts)."""

from __future__ import annotations

from collections.abc import Callable

from pymodbus.pdu import ModbusPDU

from bridge.modbus.links import BusStats, meter_reaction_s


class LineWatch:
    """Every arrival on the link, seen through pymodbus' trace hooks.

    pymodbus takes the first well-formed frame from the right unit as the answer to the request
    outstanding, and its RTU framer throws away whatever else was in the same read. RTU frames
    carry no transaction id, so an answer that arrives late (a gateway holding it past the
    timeout) or twice (a repeated frame, or a request repeated by a gateway so the meter answers
    twice) would be taken for the next request of the same shape. The watch records when bytes
    last arrived and whether anything came with or after the frame taken as the answer, so the
    client can keep the line idle for t3.5 after the last byte of anything, and refuse an answer
    that had company.

    On an RTU line (``char_time_s`` > 0) it also times every answer against its request: the
    meter's reaction beyond t3.5 (:func:`~bridge.modbus.links.meter_reaction_s`), kept in the
    statistics for the live bus budget.
    """

    def __init__(self, clock: Callable[[], float], stats: BusStats, char_time_s: float = 0.0,
                 silence: float = 0.0) -> None:
        self._clock = clock
        self._stats = stats
        self._char_time_s = char_time_s
        self._silence = silence
        #: When the outstanding request was written and its length (None: nothing to time).
        self._sent_at: float | None = None
        self._sent_chars = 0
        self.last_rx = float("-inf")
        self._arrivals = 0
        self._arrivals_before = 0
        self._buffered = 0
        self._answer_at: int | None = None
        self._crowded = False

    def packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._stats.line_bytes += len(data)
            if self._char_time_s:
                self._sent_at = self._clock()
                self._sent_chars = len(data)
        else:  # pymodbus passes its whole receive buffer on every arrival
            self.last_rx = self._clock()
            self._arrivals += 1
            self._buffered = len(data)
        return data

    def pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and self._answer_at is None:
            self._answer_at = self._arrivals
            registers = getattr(pdu, "registers", None)
            if pdu.function_code in (3, 4) and isinstance(registers, list):
                size = 5 + 2 * len(registers)  # unit, function, count, data, CRC
            else:
                try:
                    size = 4 + len(pdu.encode())  # unit + function + PDU data + CRC
                except Exception:  # a PDU that cannot re-encode is judged by its decoder
                    size = self._buffered
            self._crowded = self._buffered > size
            self._stats.line_bytes += size
            if self._sent_at is not None:
                self._stats.record_reaction(meter_reaction_s(
                    self.last_rx - self._sent_at, self._sent_chars, size, self._char_time_s,
                    self._silence))
                self._sent_at = None
        return pdu

    def expect_answer(self) -> None:
        """A request is about to go out: the next frame decoded is its answer."""
        self._answer_at = None
        self._crowded = False
        self._arrivals_before = self._arrivals
        self._sent_at = None

    def garbled(self) -> bool:
        """Bytes came after the request but no frame decoded (a failed CRC, a broken frame)."""
        return self._answer_at is None and self._arrivals > self._arrivals_before

    def answer_had_company(self) -> bool:
        """More bytes came in the same read as the answer, or after it."""
        return self._crowded or (self._answer_at is not None
                                 and self._arrivals > self._answer_at)
