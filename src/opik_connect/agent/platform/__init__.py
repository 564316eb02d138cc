"""The platform server: websocket endpoint, runner registry, store, HTTP API and CLI."""
