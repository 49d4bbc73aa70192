"""`kracked orders`: kracked.signals → checks → ccxt `kraken` (REST) → kracked.orders, at most once.

`domain` is pure (signal model, checks, ccxt call mapping, ledger, processor); `exchange` wraps ccxt
behind the domain's `OrderGateway`; `settings` reads the configuration. Importing this package does
not import ccxt.
"""
