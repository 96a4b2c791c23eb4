#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) and install voxkit with its test
# dependencies (the dev extra: pytest, ruff, transformers) at the versions of constraints.txt.
# Idempotent: re-running only installs what is missing or differs from a pin.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages (espeak-ng for the synthetic corpus, ...), listed in scripts/apt-packages.txt.
mapfile -t APT < <(grep -vE '^\s*(#|$)' scripts/apt-packages.txt)
missing=()
for p in "${APT[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pipq() { python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
# Every version pin lives in constraints.txt. torch first, so that pip takes the wheel already on
# disk instead of downloading a new build while resolving the rest.
python -c "import torch, torchaudio" 2>/dev/null || pipq -c constraints.txt torch torchaudio
pipq -c constraints.txt -e ".[dev]"
python -c "import voxkit, torch, torchaudio" || { echo "setup: voxkit failed to import" >&2; exit 1; }
echo "setup: ok ($(python -c 'import torch; print("torch", torch.__version__)'))"
