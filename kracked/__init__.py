"""kracked: Kraken WebSocket v2 market data into Kafka, and the services that work on it.

This package holds the shared plumbing only (settings, Kafka client factory, logging, metrics, the
command line and the local stack). The connector and the consumers live in their own top-level
packages and never import each other; both depend on `schemas`.
"""

__version__ = "0.1.0"
