#!/bin/sh
# Migrations and the first admin before the server starts, never on a request.
set -eu
if [ ! -f /site/rules.json ]; then
  echo "no /site/rules.json: copy deploy/docker/site.example to ./site first" >&2
  exit 1
fi
flask --app authsvc migrate
flask --app authsvc ensure-admin
exec gunicorn --config python:authsvc.gunicorn_conf --bind 0.0.0.0:8000 \
  --workers "${AUTHSVC_WORKERS:-4}" 'authsvc:create_app()'
