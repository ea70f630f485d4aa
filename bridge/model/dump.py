"""A meter's register image as JSON: what ``read --raw`` writes and ``simulate --from-dump`` serves.

One file holds everything a meter answered: the words of every register of the map (in
contiguous ranges), the exception it gave for each range it refused, the longest read it answered
and the shortest it refused, the 0x2B identification objects and the answer to function 0x11. The
format is plain JSON so that a user can send it and a test can keep it:

    {"format": "series4000-bridge register dump", "version": 1, "unit": 1,
     "ranges": [{"start": 1, "words": [0, 12345, ...]}, {"start": 343, "count": 4,
                 "exception": 2}, ...],
     "longest_read_answered": 60, "shortest_read_refused": 90,
     "identification": {"1": "Leviton", "2": "Series 4000", "3": "V1.051"},
     "slave_id": {"id": 247, "running": true, "text": "..."}}

``identification`` or ``slave_id`` is ``{"exception": N}`` when the meter refused the function.
Register numbers are the manual's (1-based).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE

FORMAT = "series4000-bridge register dump"
_NUMBER_LIST = re.compile(r"\[\s*((?:\d+,\s*)*\d+)\s*\]")
VERSION = 1


class DumpError(ValueError):
    """A dump file that is not what ``read --raw`` writes; the message names the place."""


@dataclass(frozen=True, slots=True)
class Refused:
    start: int
    count: int
    exception: int


@dataclass(frozen=True, slots=True)
class SlaveIdAnswer:
    slave_id: int
    running: bool
    text: str


@dataclass(frozen=True, slots=True)
class RegisterDump:
    unit: int
    #: Register number -> word, for every register the meter answered.
    words: dict[int, int] = field(default_factory=dict)
    refused: tuple[Refused, ...] = ()
    longest_read_answered: int = 0
    shortest_read_refused: int | None = None
    #: Object id -> text, or an exception code when the meter refused 0x2B.
    identification: dict[int, str] | int = field(default_factory=dict)
    #: The answer to 0x11, or an exception code.
    slave_id: SlaveIdAnswer | int = 1

    def refusal(self, start: int, count: int) -> int | None:
        """The exception a read of ``count`` registers from ``start`` gets from this image."""
        if self.shortest_read_refused is not None and count >= self.shortest_read_refused:
            return ILLEGAL_VALUE
        for r in self.refused:
            if r.start < start + count and start < r.start + r.count:
                return r.exception
        if any(reg not in self.words for reg in range(start, start + count)):
            return ILLEGAL_ADDRESS  # not in the image: the meter never showed it
        return None


def _ranges(words: dict[int, int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for reg in sorted(words):
        if out and out[-1]["start"] + len(out[-1]["words"]) == reg:
            out[-1]["words"].append(words[reg])
        else:
            out.append({"start": reg, "words": [words[reg]]})
    return out


def to_json(dump: RegisterDump) -> str:
    ranges = _ranges(dump.words) + [
        {"start": r.start, "count": r.count, "exception": r.exception} for r in dump.refused]
    ranges.sort(key=lambda r: int(r["start"]))
    ident: Any = ({"exception": dump.identification} if isinstance(dump.identification, int)
                  else {str(k): v for k, v in sorted(dump.identification.items())})
    slave: Any = ({"exception": dump.slave_id} if isinstance(dump.slave_id, int) else
                  {"id": dump.slave_id.slave_id, "running": dump.slave_id.running,
                   "text": dump.slave_id.text})
    doc = {"format": FORMAT, "version": VERSION, "unit": dump.unit, "ranges": ranges,
           "longest_read_answered": dump.longest_read_answered,
           "shortest_read_refused": dump.shortest_read_refused,
           "identification": ident, "slave_id": slave}
    # One line per range: a dump stays readable and diffs well.
    text = json.dumps(doc, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DumpError(f"{where}: must be an integer {lo}..{hi}")
    return value


def _exception(value: object, where: str) -> int | None:
    if isinstance(value, dict) and set(value) == {"exception"}:
        return _int(value["exception"], f"{where}.exception", 1, 255)
    return None


def from_json(text: str) -> RegisterDump:
    """Parse a dump; :class:`DumpError` naming the key of the first problem."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DumpError(f"format: must be {FORMAT!r} (a file written by read --raw)")
    if doc.get("version") != VERSION:
        raise DumpError(f"version: must be {VERSION}")
    unit = _int(doc.get("unit"), "unit", 1, 247)
    words: dict[int, int] = {}
    refused: list[Refused] = []
    ranges = doc.get("ranges")
    if not isinstance(ranges, list):
        raise DumpError("ranges: must be a list")
    for i, item in enumerate(ranges):
        where = f"ranges[{i}]"
        if not isinstance(item, dict):
            raise DumpError(f"{where}: must be an object")
        start = _int(item.get("start"), f"{where}.start", 1, 65536)
        if "words" in item:
            if not isinstance(item["words"], list) or start + len(item["words"]) > 65537:
                raise DumpError(f"{where}.words: must be a list of words within 1..65536")
            for j, word in enumerate(item["words"]):
                words[start + j] = _int(word, f"{where}.words[{j}]", 0, 0xFFFF)
        else:
            count = _int(item.get("count"), f"{where}.count", 1, 65537 - start)
            refused.append(Refused(start, count,
                                   _int(item.get("exception"), f"{where}.exception", 1, 255)))
    longest = _int(doc.get("longest_read_answered", 0), "longest_read_answered", 0, 65536)
    shortest_raw = doc.get("shortest_read_refused")
    shortest = None if shortest_raw is None else _int(shortest_raw, "shortest_read_refused", 1,
                                                      65536)
    return RegisterDump(unit, words, tuple(refused), longest, shortest,
                        _identification(doc.get("identification")), _slave_id(doc.get("slave_id")))


def _identification(value: object) -> dict[int, str] | int:
    code = _exception(value, "identification")
    if code is not None:
        return code
    if not isinstance(value, dict):
        raise DumpError("identification: must be an object of id: text, or {\"exception\": N}")
    out: dict[int, str] = {}
    for key, text in value.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) <= 255) or \
                not isinstance(text, str):
            raise DumpError(f"identification.{key}: must be an object id 0..255 with a text")
        out[int(key)] = text
    return out


def _slave_id(value: object) -> SlaveIdAnswer | int:
    code = _exception(value, "slave_id")
    if code is not None:
        return code
    if not isinstance(value, dict) or not isinstance(value.get("text"), str) or \
            not isinstance(value.get("running"), bool):
        raise DumpError("slave_id: must be {\"id\", \"running\", \"text\"} or {\"exception\": N}")
    return SlaveIdAnswer(_int(value.get("id"), "slave_id.id", 0, 255), value["running"],
                         value["text"])
