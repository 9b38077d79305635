# civicbot: one container runs every configured transport (Telegram, Matrix).
# Build:  docker build -t civicbot .
# Keys:   docker run --rm -v civicbot-keys:/keys civicbot civicbot keys generate
# Run:    docker run -d -v civicbot-data:/data -v civicbot-keys:/keys:ro -e CIVICBOT_TELEGRAM__TOKEN=... civicbot
# Several workers on PostgreSQL behind Caddy: docker-compose.yml (README, "Operations").
# Webhook: add -p 8443:8443 -e CIVICBOT_TELEGRAM__MODE=webhook -e CIVICBOT_TELEGRAM__WEBHOOK_URL=... \
#          -e CIVICBOT_TELEGRAM__WEBHOOK_SECRET=...  (behind a TLS-terminating reverse proxy)
# The key file has its own volume (or mount it as a secret at /keys/keys.json, mode 0400): back up
# /data and /keys separately, never together, or a stolen backup opens itself.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md babel.cfg ./
COPY bot ./bot
COPY locales ./locales
COPY config ./config
# Editable install keeps the catalogs in /app/locales beside the package, where the bot looks.
RUN pip install -e . \
 && pybabel compile -D bot -d locales --statistics \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin civicbot \
 && mkdir -p /data/matrix-store /keys \
 && chown -R civicbot:civicbot /data /keys \
 && chmod 0700 /data /keys

# The /data volume holds the database and the Matrix device store (sealed); the key file that
# opens them lives apart, in /keys. Inside the container the Telegram webhook (telegram.mode =
# "webhook") listens on every interface, so that the published port reaches it; on bare metal the
# default stays 127.0.0.1.
ENV CIVICBOT_DATABASE__URL=sqlite+aiosqlite:////data/civicbot.db \
    CIVICBOT_SECURITY__KEY_FILE=/keys/keys.json \
    CIVICBOT_MATRIX__STORE_PATH=/data/matrix-store \
    CIVICBOT_SURVEYS__DIRECTORY=/app/config/surveys \
    CIVICBOT_TELEGRAM__WEBHOOK_LISTEN=0.0.0.0 \
    CIVICBOT_TELEGRAM__WEBHOOK_PORT=8443

USER civicbot
WORKDIR /data
VOLUME ["/data", "/keys"]
# 8443: Telegram webhook (telegram.mode = "webhook"); 9464: /healthz, /readyz, /metrics
# (observability.listen, off unless set). SIGTERM stops gracefully within
# runtime.shutdown_grace_seconds: give the container longer than that to stop.
EXPOSE 8443 9464
STOPSIGNAL SIGTERM
CMD ["civicbot", "run"]
