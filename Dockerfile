# One image for every service of docker-compose.yml: the 1C emulator, the Dagster user-code
# gRPC server, dagster-webserver, dagster-daemon and the sidecar (each picks its command).
# Dependencies come from uv.lock (uv installs the Dagster stack in seconds; pip takes minutes).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home

RUN pip install --no-cache-dir "uv>=0.9,<1" \
 && useradd --system --create-home --home-dir /home/tradeos tradeos

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY alembic.ini dagster.yaml workspace.yaml ./
COPY docker/workspace.yaml ./docker/workspace.yaml
COPY tradeos_pipelines ./tradeos_pipelines
COPY api ./api
# Editable on purpose: the code finds alembic.ini, migrations and the dashboard under /app.
RUN uv sync --frozen --no-dev \
 && mkdir -p "$DAGSTER_HOME/storage" \
 && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
 && chown -R tradeos:tradeos "$DAGSTER_HOME"

USER tradeos

# 8000 REST + dashboard, 8001 WebSocket, 3000 Dagster UI, 4000 user-code gRPC, 8080 1C emulator.
EXPOSE 3000 4000 8000 8001 8080

CMD ["python", "-m", "api"]
