#!/usr/bin/env bash
# Installs the Debian packages the test suite drives (Chromium for the browser tests) when
# they are missing. Needs root or sudo; otherwise says what to install and fails.
set -euo pipefail

needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)
fc-list 2>/dev/null | grep -qi dejavu || needed+=(fonts-dejavu-core)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || needed+=(postgresql)

[ ${#needed[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "The tests need these Debian packages: ${needed[*]}." >&2
  echo "Install them as root: apt-get install -y ${needed[*]}" >&2
  exit 1
fi
echo "Installing Debian packages for the tests: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
