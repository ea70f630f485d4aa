"""The Home Assistant add-on entry point: ``python -m bridge.addon``.

The add-on does not have a logic of its own: it turns the options the user set in Home
Assistant (``/data/options.json``) and the broker the Supervisor offers into the same
configuration file the Raspberry Pi service reads, checks it with the same
:func:`bridge.config.parse_config`, and runs the same :class:`bridge.app.service.Service`.

Modules: :mod:`.options` (options -> configuration, pure), :mod:`.supervisor` (the services
API), :mod:`.health` (the heartbeat file the image's HEALTHCHECK reads), :mod:`.entry` (glue).
This package imports nothing heavy at import time, so the health check starts quickly.
"""
