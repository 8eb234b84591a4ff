#!/usr/bin/env bash
# System packages the tests need: Debian's Chromium for the browser test (Playwright never downloads
# a browser here). Idempotent; needs root (CI runs as root) or an existing /usr/bin/chromium.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (the browser test needs it)." >&2
    exit 1
  fi
  echo "installing Debian's chromium for the browser test..."
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
