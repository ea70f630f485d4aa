"""The configuration file: one YAML document, strict, with errors that name the key.

Unknown keys are errors (a typo must not silently fall back to a default). Strings may contain
``${NAME}`` to take a secret from the environment. Every error message starts with the key
path, e.g. ``buses[0].meters[1].unit: must be 1..247``. ``schema`` holds the models,
``loading`` reads and checks a file.
"""

from bridge.config.loading import format_validation_error, load_config, parse_config
from bridge.config.schema import (
    DEFAULT_FAST_KEYS,
    MQTT_PORT,
    MQTT_TLS_PORT,
    NAME_RE,
    AlarmInputConfig,
    BusConfig,
    Config,
    GpioInputConfig,
    MeterConfig,
    ModbusServerConfig,
    MqttConfig,
    PublishConfig,
    PulseInputConfig,
    TlsConfig,
    WebConfig,
)

__all__ = ["DEFAULT_FAST_KEYS", "MQTT_PORT", "MQTT_TLS_PORT", "NAME_RE", "AlarmInputConfig",
           "BusConfig", "Config",
           "GpioInputConfig", "MeterConfig", "ModbusServerConfig", "MqttConfig", "PublishConfig",
           "PulseInputConfig", "TlsConfig", "WebConfig", "format_validation_error", "load_config",
           "parse_config"]
