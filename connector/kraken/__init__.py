"""Kraken WebSocket v2 client, messages, auth and the local simulator."""
