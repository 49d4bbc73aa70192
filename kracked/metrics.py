"""Prometheus metrics: one registry per process, served on `--metrics-port` when given.

Metric objects are module-level singletons created on first use by name, so the connector and the
consumers declare what they need without a central list, and tests can read values back.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
_lock = threading.Lock()
_metrics: dict[str, object] = {}

M = TypeVar("M", Counter, Gauge, Histogram)


def _get(kind: type[M], name: str, doc: str, labels: tuple[str, ...]) -> M:
    with _lock:
        metric = _metrics.get(name)
        if metric is None:
            metric = kind(name, doc, labels, registry=REGISTRY)
            _metrics[name] = metric
        if not isinstance(metric, kind):
            raise TypeError(f"metric {name} already exists as {type(metric).__name__}")
        return metric


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return _get(Counter, name, doc, labels)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return _get(Gauge, name, doc, labels)


def histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
    return _get(Histogram, name, doc, labels)


def serve(port: int | None) -> None:
    """Start the /metrics HTTP server on port (no-op for None).

    It binds 127.0.0.1 unless `KRACKED_METRICS_HOST` says otherwise (containers set 0.0.0.0 so that
    Prometheus on the compose network can scrape them).
    """
    if port is None:
        return
    host = os.environ.get("KRACKED_METRICS_HOST", "127.0.0.1")
    start_http_server(port, addr=host, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", host, port)
