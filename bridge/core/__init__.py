"""The bridge's core: the bus pollers, the meter runtime and what they publish."""
