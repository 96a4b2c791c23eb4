#!/bin/bash
# Train the small codec of recipes/codec_small.toml in one call on a GPU machine that has torch but
# no package registry and a small transfer limit: render the espeak plan there (lossless audio:
# a codec must not learn another codec's artefacts), train for BUDGET seconds with Whisper
# tiny.en's encoder as the distillation teacher, export (float16 layers, float32 codebook), split
# into parts under OUT for the trip back. scripts/gpu_session.sh runs it beside the recogniser and
# the chat model in one call.
#
# What it expects (made on a CPU machine by `bash scripts/device_kit.sh`, docs/training.md):
#   .carry/en_train.jsonl.gz, .carry/espeak_kit.tar.xz, .carry/whisper.bin.xz, .carry/tekken_240911.json.xz,
#   .carry/flite_train, .carry/festival_train (optional), .whl/ (vector-quantize-pytorch and its
#   pure-Python dependencies einx, torch-einops-utils, frozendict, loguru; soundfile, cffi, pycparser)
# Knobs: BUDGET, WORKERS (rendering), CORPUS (an English corpus rendered already), BATCH, EXTRA,
# DRY/PYTHON (scripts/device_env.sh).
# Then, back here: cat OUT/weights.part* > DIR/consolidated.safetensors, cp OUT/params.json DIR/,
# check OUT/weights.sha256, and score it with voxkit eval codec (docs/codec.md).
# CPU dry run (a tiny plan, the system's espeak-ng):
#   DRY=1 BUDGET=30 RUN=/tmp/codec_dry EN_PLAN=small_en.jsonl.gz bash scripts/train_codec_small.sh
source scripts/device_env.sh
BUDGET=${BUDGET:-420}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
EXTRA=${EXTRA:-}
RUN=${RUN:-runs/codec_small}
if [ -n "${DRY:-}" ]; then
  WORKERS=${WORKERS:-1}; BATCH=${BATCH:-2}; TEACHER=${TEACHER:-$WHISPER_DIR}
else
  WORKERS=${WORKERS:-14}; BATCH=${BATCH:-64}; TEACHER=${TEACHER:-$WHISPER_DIR}
fi
log "installed"
mkdir -p data
if [ -z "${CORPUS:-}" ]; then
  CORPUS=data/codec_en
  synth "$EN_PLAN" "$CORPUS" "$WORKERS" 170
  log "rendered"
fi
TRAIN="\"$CORPUS/train.jsonl\""
for m in flite_train festival_train; do
  if [ -s ".carry/$m/train.jsonl" ]; then ln -sfn "$PWD/.carry/$m" "data/$m"; TRAIN="$TRAIN,\"data/$m/train.jsonl\""; fi
done
TRAIN="[$TRAIN]"; log "train on $TRAIN"
# shellcheck disable=SC2086  # EXTRA is a list of overrides
"$VOX" train recipes/codec_small.toml train.out_dir="$RUN" train.time_budget_s="$BUDGET" tasks.codec.teacher="$TEACHER" \
  "tasks.codec.train=$TRAIN" "tasks.codec.dev=[]" tasks.codec.batch_size="$BATCH" $EXTRA > "$OUT/train.log" 2>&1
tail -n 3 "$OUT/train.log" | tee -a "$OUT/run.log"
log "trained"
"$VOX" export codec "$RUN" --out "$RUN.export" --dtype float16 2>&1 | tail -3 | tee -a "$OUT/run.log"
[ -s "$RUN.export"/consolidated.safetensors ] || { log "no export: nothing to bring back"; exit 1; }
cp "$RUN.export"/*.json "$OUT/"  # params.json (and vocab_subset.json)
split -b 15m -d "$RUN.export/consolidated.safetensors" "$OUT/weights.part"
sha256sum "$RUN.export/consolidated.safetensors" | tee "$OUT/weights.sha256"
log "exported"
