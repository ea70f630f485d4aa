"""Leviton Series 4000-K Modbus meters to MQTT and Home Assistant."""

__version__ = "0.1.0"
