"""The composition root: wires the core to MQTT, GPIO and the web server."""
