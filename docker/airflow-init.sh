#!/usr/bin/env bash
# One-shot init of the Airflow stack (compose service airflow-init; runs before every other Airflow service):
# migrate the metadata DB, write the admin's password for the auth manager, create the project folders.
# Idempotent: re-running migrates nothing new and rewrites the same password file.
set -euo pipefail

: "${AIRFLOW_ADMIN_USER:?AIRFLOW_ADMIN_USER is not set (see .env.example)}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set (see .env.example)}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set}"

passwords_file="$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
dirs=("$(dirname "$passwords_file")" "${CT_VAR_DIR:-var}" "${CT_LOG_DIR:-var/logs}")
mkdir -p "${dirs[@]}"
# Named volumes start root-owned: hand them to the Airflow user (the init container runs as root for this).
if [ "$(id -u)" = "0" ] && [ -n "${AIRFLOW_UID:-}" ]; then
  chown -R "${AIRFLOW_UID}:0" "${dirs[@]}" /opt/airflow/logs 2>/dev/null || true
  chmod -R g+rwX "${dirs[@]}"
fi

echo "airflow-init: migrating the metadata database"
airflow db migrate

# The password travels through the environment only; the file is the auth manager's store (mode 0600).
python - <<'PY'
import json, os, tempfile
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
users = {os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".passwords.")
with os.fdopen(fd, "w") as f:
    json.dump(users, f)
    f.write("\n")
os.chmod(tmp, 0o640)
os.replace(tmp, path)
uid = os.environ.get("AIRFLOW_UID")
if os.getuid() == 0 and uid:
    os.chown(path, int(uid), 0)
PY
airflow db check-migrations -t 0
echo "airflow-init: database migrated, admin user '${AIRFLOW_ADMIN_USER}' ready"
