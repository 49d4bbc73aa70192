"""Throughput of the simulator at max rate: book + trade frames/s pushed to one client.

Run: `python -m connector.kraken.sim.bench [--seconds 5] [--symbols BTC/USD] [--depth 10] [--client raw|websockets]`

The simulator runs in a child process (`kracked sim --rate max`, so it has a core of its own); the
client here counts frames. The default `raw` client parses WebSocket frame headers by hand so that it
costs far less than the server (the figure is the server's); `websockets` measures a real client.
Prints frames/s and MB/s, plus the ratio against the first (warm-up) second as a baseline.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


def _start_sim(symbols: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "connector.kraken.sim", "--rate", "max", "--symbols", symbols]
    env = dict(os.environ, KRACKED_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("KRACKED_KRAKEN_WS_URL="):
            return proc, line.split("=", 1)[1].strip()
    raise RuntimeError("simulator did not print its URL")


def _mask_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
    return head + mask + masked


def raw_client(url: str, requests: list[str], seconds: float) -> list[tuple[float, int, int]]:
    """Count text frames per second with a minimal WebSocket reader: [(t, frames, bytes), ...]."""
    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    for r in requests:
        sock.sendall(_mask_frame(r))
    marks: list[tuple[float, int, int]] = []
    frames = nbytes = 0
    start = time.perf_counter()
    next_mark = start + 1.0
    data = bytearray(buf)
    pos = 0
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        nbytes += len(chunk)
        data += chunk
        end = len(data)
        while end - pos >= 2:
            n = data[pos + 1] & 0x7F
            hdr = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (data[pos + 2] << 8) | data[pos + 3]
                hdr = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(data[pos + 2 : pos + 10], "big")
                hdr = 10
            if end - pos < hdr + n:
                break
            frames += 1
            pos += hdr + n
        if pos > 1 << 20:
            del data[:pos]
            pos = 0
        now = time.perf_counter()
        if now >= next_mark:
            marks.append((now - start, frames, nbytes))
            next_mark += 1.0
            if now - start >= seconds:
                break
    sock.close()
    return marks


def websockets_client(url: str, requests: list[str], seconds: float) -> list[tuple[float, int, int]]:
    from websockets.sync.client import connect

    marks: list[tuple[float, int, int]] = []
    frames = nbytes = 0
    with connect(url, compression=None, max_size=2**22) as ws:
        for r in requests:
            ws.send(r)
        start = time.perf_counter()
        next_mark = start + 1.0
        while True:
            msg = ws.recv()
            frames += 1
            nbytes += len(msg)
            now = time.perf_counter()
            if now >= next_mark:
                marks.append((now - start, frames, nbytes))
                next_mark += 1.0
                if now - start >= seconds:
                    break
    return marks


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--symbols", default="BTC/USD")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--client", choices=("raw", "websockets"), default="raw")
    args = p.parse_args(argv)
    symbols = args.symbols.split(",")
    requests = [
        json.dumps(
            {"method": "subscribe", "params": {"channel": "book", "symbol": symbols, "depth": args.depth}}
        ),
        json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": symbols}}),
    ]
    proc, url = _start_sim(args.symbols)
    try:
        client = raw_client if args.client == "raw" else websockets_client
        marks = client(url, requests, args.seconds + 1.0)
    finally:
        proc.terminate()
        proc.wait(10)
    if len(marks) < 2:
        print("not enough samples")
        return 1
    (t0, f0, b0), (t1, f1, b1) = marks[0], marks[-1]
    fps = (f1 - f0) / (t1 - t0)
    mbps = (b1 - b0) / (t1 - t0) / 1e6
    warm = f0 / t0
    print(
        f"client={args.client} symbols={args.symbols} depth={args.depth}: {fps:,.0f} frames/s, {mbps:.1f} MB/s "
        f"(steady state over {t1 - t0:.1f}s; ratio to warm-up second {fps / warm:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
