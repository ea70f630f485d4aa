"""Modbus exception codes the bridge and the simulator act on (Modbus application protocol,
section 7); their names for messages are in :data:`bridge.errors.EXCEPTION_NAMES`."""

ILLEGAL_FUNCTION = 1
#: A register of the request does not exist on the device.
ILLEGAL_ADDRESS = 2
#: A value in the request is not allowed: for a read, most often a count longer than it takes.
ILLEGAL_VALUE = 3
