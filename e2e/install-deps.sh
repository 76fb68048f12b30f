#!/usr/bin/env bash
# Installs the host tools upkeep's tests drive for real: git (and its
# http-backend), the package managers and repository tools of the host-updater
# tests, and systemd-nspawn. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

pkgs=(git)
if [ -f hostdeps/debian-packages.txt ]; then
  while read -r p; do
    p=${p%%#*}; p=${p//[[:space:]]/}
    [ -n "$p" ] && pkgs+=("$p")
  done < hostdeps/debian-packages.txt
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host tools: all present"
  exit 0
fi
echo "host tools: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
