#!/bin/sh
# Install everything Spillway needs to build, run and test, from Debian 12
# packages only. Idempotent; needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libcivetweb-dev libhiredis-dev libpq-dev libssl-dev
      libmsgpack-dev libjansson-dev libinih-dev libcmocka-dev libsystemd-dev
      redis-server postgresql postgresql-common python3 curl wrk openssl"
# The test suite also fuzzes with clang's libFuzzer.
[ "${1:-}" != "--test" ] || PKGS="$PKGS clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The test suite also drives the dashboard in headless Chromium.
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null; then
    echo "installing: chromium (for the dashboard test)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
# promtool (checks metrics and alert rules in the tests) ships in the
# prometheus package, and the proxy test runs nginx in front of the server
# with deploy/nginx/spillway.conf, and the failover tests run a real
# redis-sentinel; keep the packages' own servers from being started where
# no init system guards them.
for tool in promtool:prometheus nginx:nginx redis-sentinel:redis-sentinel; do
    [ "${1:-}" = "--test" ] || break
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] && continue
    echo "installing: ${tool#*:} (for the tests)"
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
    [ -z "$guard" ] || $SUDO rm -f /usr/sbin/policy-rc.d
done
# The OpenAPI test validates server/openapi.json with an npm package made
# for it (Debian 12 packages no OpenAPI 3.1 validator), installed once into
# a directory of its own; node also runs the API's Node client example.
if [ "${1:-}" = "--test" ]; then
    TOOLS=${SPILLWAY_TEST_TOOLS:-/opt/spillway-test-tools}
    if ! command -v npm >/dev/null; then
        echo "installing: nodejs npm (for the OpenAPI test)"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    if [ ! -x "$TOOLS/node_modules/.bin/validate-api" ]; then
        echo "installing: @seriousme/openapi-schema-validator 2.11.0 into $TOOLS"
        $SUDO mkdir -p "$TOOLS"
        $SUDO npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
            @seriousme/openapi-schema-validator@2.11.0 >/dev/null
    fi
fi
