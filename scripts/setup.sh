#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) and install voxkit with its test
# dependencies. Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v espeak-ng >/dev/null 2>&1 || ! ldconfig -p | grep -q libespeak-ng; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng libespeak-ng1 >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first so that pip takes the local wheel; torchaudio pinned to a build that works with it.
python -m pip install -q "torch==2.14.1" "torchaudio==2.11.0"
python -m pip install -q -e ".[dev]"
