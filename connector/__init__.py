"""The Kraken side of kracked: Kraken WebSocket v2 → Kafka (`kracked connector`).

`connector.kraken` is the only code that knows Kraken's wire format (client, messages, auth, the
simulator); `integrity` and `mapping` are pure; `publisher` talks to Kafka; `pipeline` ties a frame's
path together; `app` wires and runs the process. Nothing here imports `consumers`.
"""
