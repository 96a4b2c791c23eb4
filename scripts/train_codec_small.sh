#!/bin/bash
# Train the small codec of recipes/codec_small.toml in one call on a GPU machine that has torch but
# no package registry and a small transfer limit: render the espeak plan there (lossless audio:
# a codec must not learn another codec's artefacts), train for BUDGET seconds with Whisper
# tiny.en's encoder as the distillation teacher, export (float16 layers, float32 codebook), split
# into parts under OUT for the trip back.
#
# What it expects, made on a CPU machine (see scripts/train_realtime_tiny.sh for the same kit):
#   .carry/en_train.jsonl.gz       the "train" rows of data/plans/en.jsonl.gz (docs/data.md)
#   .carry/espeak_kit.tar.xz       bash scripts/espeak_kit.sh .carry/espeak_kit.tar.xz
#   .carry/whisper                 python scripts/pack_for_device.py whisper-encoder .carry/whisper
#   .carry/flite_train, .carry/festival_train   (optional) pack_for_device.py opus ... --level 0.95
#   .whl/                          wheels the machine lacks: vector-quantize-pytorch and its pure-Python
#                                  dependencies (einx, torch-einops-utils, frozendict, loguru), soundfile, cffi, pycparser
# Then, back here: cat OUT/weights.part* > DIR/consolidated.safetensors, cp OUT/params.json DIR/,
# check OUT/weights.sha256, and score it with voxkit eval codec (docs/codec.md).
# CPU dry run (a tiny plan, the system's espeak-ng):
#   DRY=1 BUDGET=30 RUN=/tmp/codec_dry EN_PLAN=small_en.jsonl.gz bash scripts/train_codec_small.sh
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-420}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
EXTRA=${EXTRA:-}
RUN=${RUN:-runs/codec_small}
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/run.log"; }
if [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . > /tmp/pipe.log 2>&1 || { cat /tmp/pipe.log; exit 1; }
  VOX="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/voxkit"
  nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/run.log"
  WORKERS=14; BATCH=${BATCH:-64}; TEACHER=${TEACHER:-.carry/whisper}
  tar -xJf .carry/espeak_kit.tar.xz -C /tmp
  K=/tmp/espeak_kit
  synth() { LD_LIBRARY_PATH=$K/lib VOXKIT_ESPEAK_LIB=$K/lib/libespeak-ng.so.1 ESPEAK_DATA_PATH=$K "$VOX" data synth --quiet --format wav "$@"; }
else
  VOX=".venv/bin/voxkit"; WORKERS=1; BATCH=${BATCH:-2}; TEACHER=${TEACHER:-whisper-tiny.en}
  synth() { "$VOX" data synth --quiet --format wav "$@"; }
fi
log "installed"
mkdir -p data
timeout 170 bash -c "$(declare -f synth); K=${K:-}; VOX=$VOX; synth --plan $EN_PLAN --out data/codec_en --workers $WORKERS" > /tmp/render.log 2>&1
tail -n 3 /tmp/render.log | tee -a "$OUT/run.log"
log "rendered"
TRAIN="\"data/codec_en/train.jsonl\""
for m in flite_train festival_train; do
  if [ -s ".carry/$m/train.jsonl" ]; then ln -sfn "$PWD/.carry/$m" "data/$m"; TRAIN="$TRAIN,\"data/$m/train.jsonl\""; fi
done
TRAIN="[$TRAIN]"; log "train on $TRAIN"
"$VOX" train recipes/codec_small.toml train.out_dir="$RUN" train.time_budget_s="$BUDGET" tasks.codec.teacher="$TEACHER" \
  "tasks.codec.train=$TRAIN" "tasks.codec.dev=[]" tasks.codec.batch_size="$BATCH" $EXTRA 2>&1 \
  | tee "$OUT/train.log" | grep -v "^\s*$" | tail -n 200 > /tmp/train_tail.log
log "trained"
"$VOX" export codec "$RUN" --out /tmp/export --dtype float16 2>&1 | tail -3 | tee -a "$OUT/run.log"
cp /tmp/export/params.json "$OUT/params.json"
split -b 15m -d /tmp/export/consolidated.safetensors "$OUT/weights.part"
sha256sum /tmp/export/consolidated.safetensors | tee "$OUT/weights.sha256"
log "exported"
