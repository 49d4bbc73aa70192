# One image for every kracked process (connector, consumers, sim, init); the command picks the role.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 KRACKED_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY kracked ./kracked
COPY schemas ./schemas
COPY connector ./connector
COPY consumers ./consumers
RUN pip install --no-cache-dir . && useradd --create-home kracked && mkdir -p /data && chown kracked /data
USER kracked
ENTRYPOINT ["kracked"]
CMD ["--help"]
