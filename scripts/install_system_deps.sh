#!/usr/bin/env bash
# System packages the tests need, from Debian/Ubuntu's archive. Idempotent; needs root (CI runs as
# root) or the packages already present.
#   chromium                       the browser test (Playwright never downloads a browser here)
#   podman buildah runc uidmap     the image tests build model/Dockerfile and run it as SageMaker does
#   mmdebstrap                     a base image from Debian packages where the registry's cannot be pulled
# A machine with a running Docker daemon builds and runs the image with Docker instead.
set -euo pipefail

browser=()
[ -x /usr/bin/chromium ] || browser+=(chromium)
need=()
if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  for tool in podman buildah runc mmdebstrap; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  command -v newuidmap >/dev/null || need+=(uidmap)
fi
[ ${#browser[@]} -eq 0 ] && [ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing for the tests: ${browser[*]} ${need[*]}; run 'sudo apt-get install -y ${browser[*]} ${need[*]}'" >&2
  exit 1
fi
echo "installing from the Debian archive for the tests: ${browser[*]} ${need[*]}..."
apt-get update -q >/dev/null
# Chromium with its recommended fonts (the page's screenshots and contrast checks read them).
[ ${#browser[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${browser[@]}" >/dev/null
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
