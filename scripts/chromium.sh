#!/usr/bin/env bash
# Make sure a Chromium for the browser tests exists: Debian's package, installed when we may (root).
set -euo pipefail
browser=${AKASH_NB_CHROMIUM:-/usr/bin/chromium}
if [ -x "$browser" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> Installing Debian's chromium for the browser tests (once)."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
else
  echo "The browser tests need Chromium at $browser: install it (apt-get install chromium), or set" \
       "AKASH_NB_CHROMIUM to a Chromium binary." >&2
  exit 1
fi
