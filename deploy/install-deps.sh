#!/bin/sh
# Install everything Spillway needs to build, run and test, from Debian 12
# packages only. Idempotent; needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libcivetweb-dev libhiredis-dev libpq-dev
      libmsgpack-dev libjansson-dev libinih-dev libcmocka-dev libsystemd-dev
      redis-server postgresql postgresql-common python3 curl wrk"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
