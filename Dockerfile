# Streamcord in one process: the bot, its SQLite database in the /app/data volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_PATH=/app/data/streamcord.sqlite3 \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9108

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

RUN useradd --create-home --uid 10001 streamcord && mkdir -p /app/data && chown streamcord /app/data
USER streamcord
VOLUME /app/data
EXPOSE 9108

# No curl in the slim image: Python asks /healthz (503 when the gateway is down or the database stuck).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['METRICS_PORT']}/healthz\", timeout=4)"]

ENTRYPOINT ["python", "-m", "bot"]
