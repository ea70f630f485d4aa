"""The project's exceptions.

BridgeError
 ├── ConfigError          the configuration file is invalid (message names the key path,
 │                        made by config_error_message from the schema's validation errors)
 ├── DecodeError          register words cannot be a value of the requested type or length
 ├── ModbusError          a Modbus transaction failed
 │    ├── ModbusTimeout       no (valid) answer within the timeout, after retries
 │    ├── ModbusExceptionReply the meter answered with a Modbus exception code
 │    ├── ModbusFrameError    the answer was malformed (length, unit id, function code)
 │    └── BusUnavailable      the port or gateway cannot be opened or connected
 ├── GpioError            a GPIO line cannot be found, requested or read (names chip and line)
 │    └── GpioDeviceGone      the GPIO chip went away while a line was requested
 ├── StoreError           the pulse total cannot be written to its file
 └── PulseWeightMismatch  the configured Wh per pulse disagrees with the meter (register 144)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``str()`` is the message for the user."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "tagged-union")) or \
                part in ("int", "str", "float", "bool", "literal", "constrained-int"):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[0].lower() + msg[1:] if msg else msg


#: A model-level check names the key it is about at the start of its message ("device: ...").
_KEYED_MSG = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)(?::|\s*$)\s*(.*)$")


def config_error_message(errors: Iterable[Mapping[str, Any]]) -> str:
    """The message of a :class:`ConfigError` from the schema's validation errors (pydantic's
    ``ValidationError.errors()``): one line per problem, each starting with the key path."""
    lines = []
    for error in errors:
        where = _loc(tuple(error["loc"]))
        msg = _message(error)
        keyed = _KEYED_MSG.match(msg)
        if keyed and error.get("type") == "value_error":
            key, rest = keyed.groups()
            path = f"{where}.{key}" if where and not key.startswith("[") else where + key
            lines.append(f"{path}: {rest}")
        else:
            lines.append(f"{where or 'config'}: {msg}")
    return "\n".join(lines)


class DecodeError(BridgeError):
    """Register words do not decode to a value."""


class ModbusError(BridgeError):
    """A Modbus transaction failed."""


class ModbusTimeout(ModbusError):
    """The meter did not answer in time."""


class ModbusFrameError(ModbusError):
    """The answer was malformed or did not match the request."""


class BusUnavailable(ModbusError):
    """The serial port or the TCP gateway cannot be reached."""


class GpioError(BridgeError):
    """A GPIO line cannot be found, requested or read; the message names the chip and line."""


class GpioDeviceGone(GpioError):
    """The GPIO chip disappeared (device removed) while one of its lines was requested."""


class StoreError(BridgeError):
    """The pulse total could not be saved; the message names the file."""


class PulseWeightMismatch(BridgeError):
    """The configured energy per pulse is not the one the meter uses (register 144)."""


EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusExceptionReply(ModbusError):
    """The meter answered with a Modbus exception."""

    def __init__(self, code: int, context: str = "") -> None:
        self.code = code
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        where = f" ({context})" if context else ""
        super().__init__(f"Modbus exception {code:02d}: {name}{where}")
