# syntax=docker/dockerfile:1
# restaking-aggregator: multi-stage build, non-root runtime, state in /data, config mounted at /app/config.
#   docker compose up -d                          (see docker-compose.yml)
#   docker run --rm restaking-aggregator rebalance   # one dry-run proposal on the bundled demo

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY optimizer ./optimizer
COPY adapters ./adapters
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 aggregator && mkdir -p /data && chown aggregator /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config ./config
COPY data ./data
# The API listens on every interface of the container (published on the host's 127.0.0.1 by docker-compose.yml);
# `run` refuses that (exit 3) unless AGGREGATOR_API__TOKEN holds at least 16 characters.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGGREGATOR_CONFIG=/app/config/demo.toml \
    AGGREGATOR_DATABASE__URL=sqlite:////data/aggregator.sqlite \
    AGGREGATOR_API__HOST=0.0.0.0 \
    AGGREGATOR_API__PORT=8787
USER 10001
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["aggregator", "health"]
ENTRYPOINT ["aggregator"]
CMD ["run"]
