#!/bin/sh
# First start of the postgres profile: one role and database for Orthanc's
# index, one for the service; passwords from the docker secrets.
set -eu
orthanc_pw=$(cat /run/secrets/orthanc_db_password)
authsvc_pw=$(cat /run/secrets/authsvc_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v orthanc_pw="$orthanc_pw" -v authsvc_pw="$authsvc_pw" <<'SQL'
CREATE ROLE orthanc LOGIN PASSWORD :'orthanc_pw';
CREATE DATABASE orthanc OWNER orthanc;
CREATE ROLE authsvc LOGIN PASSWORD :'authsvc_pw';
CREATE DATABASE authsvc OWNER authsvc;
SQL
