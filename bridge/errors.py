"""The project's exceptions.

BridgeError
 ├── ConfigError          the configuration file is invalid (message names the key path)
 ├── DecodeError          register words cannot be a value of the requested type or length
 ├── ModbusError          a Modbus transaction failed
 │    ├── ModbusTimeout       no (valid) answer within the timeout, after retries
 │    ├── ModbusExceptionReply the meter answered with a Modbus exception code
 │    ├── ModbusFrameError    the answer was malformed (length, unit id, function code)
 │    └── BusUnavailable      the port or gateway cannot be opened or connected
 ├── GpioError            a GPIO line cannot be found, requested or read (names chip and line)
 │    └── GpioDeviceGone      the GPIO chip went away while a line was requested
 ├── StoreError           the pulse total cannot be written to its file
 ├── RequestRefused       a Modbus TCP client's request the bridge refuses (carries the code)
 └── PulseWeightMismatch  the configured Wh per pulse disagrees with the meter (register 144)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``str()`` is the message for the user."""


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


#: Modbus exception codes the bridge's server answers with (names above).
ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4
DEVICE_BUSY = 6
GATEWAY_PATH_UNAVAILABLE = 10
GATEWAY_TARGET_FAILED = 11


class RequestRefused(BridgeError):
    """A request from a Modbus TCP client that the bridge refuses, with the exception code the
    server answers and the reason it logs."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"exception {code:02d} ({EXCEPTION_NAMES.get(code, 'unknown')}): "
                         f"{reason}")
