#!/bin/sh
# Random secrets for docker-compose.yml, one file each in ./secrets, made
# once: an existing file is kept. The folder is the owner's only (0700); the
# files are 0644 because compose mounts each one into containers that run as
# other users (the service, postgres), who must read them.
set -eu
cd "$(dirname "$0")/../.."
umask 022
mkdir -p secrets
chmod 700 secrets
new() { [ -s "secrets/$1" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "secrets/$1"; }
for name in secret_key ingest_secret webhook_secret service_token display_key audit_key \
            postgres_password orthanc_db_password authsvc_db_password; do
  new "$name"
done
# The service's PostgreSQL password, as libpq reads it (PGPASSFILE).
[ -s secrets/authsvc_pgpass ] || echo "postgres:5432:authsvc:authsvc:$(cat secrets/authsvc_db_password)" > secrets/authsvc_pgpass
echo "secrets in $(pwd)/secrets"
