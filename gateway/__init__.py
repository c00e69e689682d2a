"""The running service: config, Starlette app, WS hub and broker, workers, CLI."""
