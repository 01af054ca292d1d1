#!/usr/bin/env bash
# First start of the postgres container only (docker-entrypoint-initdb.d): one database per consumer.
# POSTGRES_DB (created by the image) stays the application database the runbook's pg_dump names.
set -euo pipefail
for db in "${AIRFLOW_DB:?}" "${MLFLOW_DB:?}"; do
  if ! psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
    echo "created database $db"
  fi
done
