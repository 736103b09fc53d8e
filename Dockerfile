# syntax=docker/dockerfile:1
# restaking-aggregator: multi-stage build, non-root runtime.
#   docker build -t restaking-aggregator .
#   docker run --rm restaking-aggregator                 # the daemon on the bundled offline demo
#   docker run --rm restaking-aggregator rebalance       # one dry-run proposal

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY optimizer ./optimizer
COPY adapters ./adapters
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 aggregator
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config ./config
COPY data ./data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGGREGATOR_CONFIG=/app/config/demo.toml
USER aggregator
ENTRYPOINT ["aggregator"]
CMD ["run"]
