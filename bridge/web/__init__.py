"""The status page, its JSON API and server-sent events, and the Prometheus metrics.

The only package that imports aiohttp and prometheus_client. It reads the bridge through
:class:`bridge.web.source.StatusSource` and never imports the core.
"""
