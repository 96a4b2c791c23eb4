# Sourced (not run) by the scripts that train or measure on a lent GPU machine: scripts/train_*.sh
# and scripts/gpu_session.sh. Such a machine has torch but no package registry; what voxkit needs
# beyond its image travels as wheels in .whl/ and as a kit in .carry/ (scripts/device_kit.sh makes
# both). One copy of the set-up keeps the scripts from drifting apart.
#
# Sets T0, OUT, log(), PY (python, with -P), VOX (the voxkit command), WHISPER_DIR (Whisper
# tiny.en's encoder, unpacked from .carry/whisper.bin.xz), ESPEAK_ENV (the variables
# that point libespeak-ng at the carried kit: prefix a rendering command with `env $ESPEAK_ENV`;
# they are not exported, because the kit's libraries would shadow the machine's own for torch).
#
# Knobs:
#   DRY=1                 a dry run on this CPU machine: the checkout's .venv and the system's espeak-ng
#   PYTHON=...            the interpreter of the device path (default python3); setting it with DRY=1
#                         runs the device path here, e.g. in an environment holding only what the
#                         GPU image holds (docs/training.md, "A GPU session")
#   WHEELS=.whl           where the wheels are
#   VOXKIT_DEVICE_READY=1 a calling script has set up already (gpu_session.sh): skip the install
# shellcheck shell=bash
set -uo pipefail
T0=${T0:-$(date +%s)}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/run.log"; }
if [ -n "${DRY:-}" ] && [ -z "${PYTHON:-}" ]; then
  PY=".venv/bin/python -P"; VOX=".venv/bin/voxkit"; ESPEAK_ENV=""
else
  PYTHON=${PYTHON:-python3}
  if [ -z "${VOXKIT_DEVICE_READY:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e . > /tmp/pipe.log 2>&1 || { cat /tmp/pipe.log; exit 1; }
    rm -rf /tmp/espeak_kit && tar -xJf .carry/espeak_kit.tar.xz -C /tmp || exit 1
    # the one tokenizer file voxkit reads from mistral-common's data (the wheel travels without it)
    mkdir -p /tmp/site/mistral_common/data && "$PYTHON" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
      .carry/tekken_240911.json.xz /tmp/site/mistral_common/data/tekken_240911.json || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee -a "$OUT/run.log"
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} VOXKIT_DEVICE_READY=1
  PY="$PYTHON -P"; VOX="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/voxkit"
  ESPEAK_ENV="LD_LIBRARY_PATH=/tmp/espeak_kit/lib VOXKIT_ESPEAK_LIB=/tmp/espeak_kit/lib/libespeak-ng.so.1 ESPEAK_DATA_PATH=/tmp/espeak_kit"
fi
WHISPER_DIR=/tmp/voxkit_whisper
if [ ! -s "$WHISPER_DIR/model.bin" ] && [ -s .carry/whisper.bin.xz ]; then
  mkdir -p "$WHISPER_DIR"
  ${PY%% *} -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    .carry/whisper.bin.xz "$WHISPER_DIR/model.bin" || exit 1
fi
[ -s "$WHISPER_DIR/model.bin" ] || WHISPER_DIR=whisper-tiny.en  # a dry run without the kit: the installed package
# Render a plan: synth PLAN OUT_DIR WORKERS SECONDS (rendering resumes, so a later call adds to it).
synth() {
  # shellcheck disable=SC2086  # ESPEAK_ENV is a list of assignments
  timeout "$4" env $ESPEAK_ENV "$VOX" data synth --quiet --format wav --plan "$1" --out "$2" --workers "$3" > "/tmp/render_$(basename "$2").log" 2>&1
  tail -n 3 "/tmp/render_$(basename "$2").log" | tee -a "$OUT/run.log"
}
