#!/usr/bin/env bash
# Installs the Debian packages the test suite drives (Chromium for the browser tests) when
# they are missing. Needs root or sudo; otherwise says what to install and fails.
set -euo pipefail

needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)
fc-list 2>/dev/null | grep -qi dejavu || needed+=(fonts-dejavu-core)
command -v node >/dev/null 2>&1 || needed+=(nodejs npm)
command -v g++ >/dev/null 2>&1 || needed+=(g++ make)  # better-sqlite3 builds from source offline
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || needed+=(postgresql)
[ -x /usr/sbin/smtp-sink ] || needed+=(postfix)  # smtp-sink: an SMTP peer told to answer 4xx/5xx

PDS_VERSION=0.4.217  # the newest @atproto/pds that runs on Node 20
install_pds() {
  # A real Bluesky PDS for the Bluesky adapter's tests. The marker is written only after npm
  # finished, native builds (better-sqlite3 compiles from source offline) included.
  [ -f ".test-node/.installed-$PDS_VERSION" ] && return 0
  echo "Installing @atproto/pds $PDS_VERSION into .test-node (a few minutes the first time)"
  npm install --prefix .test-node --no-audit --no-fund --loglevel=error \
    "@atproto/pds@$PDS_VERSION" >/dev/null
  touch ".test-node/.installed-$PDS_VERSION"
}

if [ ${#needed[@]} -eq 0 ]; then install_pds; exit 0; fi

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "The tests need these Debian packages: ${needed[*]}." >&2
  echo "Install them as root: apt-get install -y ${needed[*]}" >&2
  exit 1
fi
echo "Installing Debian packages for the tests: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix is installed for its test tools only; it must not configure itself as a mail server.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
install_pds
