# The service's image: the Flask app under gunicorn; migrations run before it starts.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY authsvc ./authsvc
# DejaVu: the block for the written report draws "Contraseña" with it (authsvc/report_block.py).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /data authsvc \
 && mkdir -p /data && chown authsvc /data
COPY deploy/docker/authsvc-entrypoint.sh /usr/local/bin/authsvc-entrypoint
COPY deploy/rules.example.json /app/rules.example.json

USER authsvc
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/authsvc-entrypoint"]
