# One image for every kracked process (connector, consumers, sim, init); the command picks the role.

# The native extension (native/, Rust + PyO3) is built into a wheel in a throw-away stage.
FROM python:3.11-slim AS native
COPY --from=rust:1.95-slim /usr/local/cargo /usr/local/cargo
COPY --from=rust:1.95-slim /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY native /native
RUN pip wheel --no-cache-dir --wheel-dir /wheels /native

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 KRACKED_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY --from=native /wheels /wheels
COPY pyproject.toml README.md LICENSE ./
COPY kracked ./kracked
COPY schemas ./schemas
COPY connector ./connector
COPY consumers ./consumers
RUN pip install --no-cache-dir /wheels/*.whl . && rm -rf /wheels \
    && useradd --create-home kracked && mkdir -p /data && chown kracked /data
USER kracked
ENTRYPOINT ["kracked"]
CMD ["--help"]
