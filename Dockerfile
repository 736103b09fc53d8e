# syntax=docker/dockerfile:1
# restaking-aggregator: multi-stage build, non-root runtime, state in /data, config mounted at /app/config.
#   docker compose up -d                          (see docker-compose.yml)
#   docker run --rm restaking-aggregator rebalance   # one dry-run proposal on the bundled demo

# The base image is pinned by digest: python:3.11-slim as the multi-arch index sha256:9c900dea… (Python 3.11.16,
# Debian slim). No container registry is reachable where this was written, so the digest was taken on 2026-11-30
# from public repositories that pin the same image: a BuildKit log of 2026-08 resolving
# docker.io/library/python:3.11-slim to it, and Dockerfiles pinning python:3.11-slim and python:3.11.16-slim to it.
# To move it: `docker buildx imagetools inspect python:3.11-slim` and replace both FROM lines.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies from the lock, every file checked against its hash (`make lock` regenerates it); then the project
# alone, built with the locked setuptools.
COPY requirements.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY optimizer ./optimizer
COPY adapters ./adapters
COPY execution ./execution
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS runtime
RUN useradd --create-home --uid 10001 aggregator && mkdir -p /data && chown aggregator /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config ./config
COPY data ./data
# State goes to /data, the one folder the non-root user may write: the database and `aggregator backtest`'s report
# (AGGREGATOR_BACKTEST_DIR is the default of its --out; /app, where the config points, is read-only to the user).
# The API listens on every interface of the container (published on the host's 127.0.0.1 by docker-compose.yml);
# `run` refuses that (exit 3) unless AGGREGATOR_API__TOKEN holds at least 16 characters.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGGREGATOR_CONFIG=/app/config/demo.toml \
    AGGREGATOR_DATABASE__URL=sqlite:////data/aggregator.sqlite \
    AGGREGATOR_BACKTEST_DIR=/data/backtest \
    AGGREGATOR_SWEEP_DIR=/data/sweep \
    AGGREGATOR_API__HOST=0.0.0.0 \
    AGGREGATOR_API__PORT=8787
USER 10001
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["aggregator", "health"]
ENTRYPOINT ["aggregator"]
CMD ["run"]
