#!/usr/bin/env bash
# Install the Debian packages that tests need, only when a binary is missing (idempotent).
set -euo pipefail
declare -A need=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [chromium]=chromium
  [docker-compose]=docker-compose
)
missing=()
for bin in "${!need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${need[$bin]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "==> system deps present"
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "==> installing Debian packages: $pkgs"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "==> installed: $pkgs"
