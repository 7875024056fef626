"""The HTTP API: the ASGI app, the /v1 routes, their schemas, API-key auth and /metrics."""
