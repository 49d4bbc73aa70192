"""Bars service: OHLCV bars from kraken.trade by event time."""
