#!/bin/bash
# Train the Whisper-initialised recogniser of recipes/realtime_tiny.toml in one call on a GPU
# machine that has torch but no package registry and a small transfer limit: render the espeak
# plans there, build the starting point, train for BUDGET seconds, export in float16 (split into
# parts under OUT for the trip back). scripts/gpu_session.sh runs it beside the codec and the chat
# model in one call; alone it takes a call of its own.
#
# What it expects (made on a CPU machine by `bash scripts/device_kit.sh`, docs/training.md):
#   .carry/en_train.jsonl.gz, .carry/fed_train.jsonl.gz   the "train" rows of the English and
#                                  French/Spanish/German plans (docs/data.md)
#   .carry/espeak_kit.tar.xz, .carry/whisper.bin.xz, .carry/tekken_240911.json.xz,
#   .carry/flite_train, .carry/festival_train, .whl/
# Knobs: BUDGET (training seconds), WORKERS (data loader processes), EN_CORPUS/FED_CORPUS (corpora
# rendered already: no rendering here), EXTRA (recipe overrides), DRY/PYTHON (scripts/device_env.sh).
# CPU dry run (tiny plans, one worker, the system's espeak-ng):
#   DRY=1 BUDGET=30 EN_PLAN=small_en.jsonl.gz FED_PLAN=small_fed.jsonl.gz EXTRA="tasks.asr.max_seconds=60" bash scripts/train_realtime_tiny.sh
source scripts/device_env.sh
BUDGET=${BUDGET:-420}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
FED_PLAN=${FED_PLAN:-.carry/fed_train.jsonl.gz}
EXTRA=${EXTRA:-}
RUN=${RUN:-runs/realtime_tiny}
if [ -n "${DRY:-}" ]; then W_EN=1; W_FED=1; WORKERS=${WORKERS:-1}; else W_EN=11; W_FED=5; WORKERS=${WORKERS:-14}; fi
log "installed"
mkdir -p data
ln -sfn "$PWD/.carry/flite_train" data/flite_train
ln -sfn "$PWD/.carry/festival_train" data/festival_train
if [ -z "${EN_CORPUS:-}" ]; then
  EN_CORPUS=data/asr_en23; FED_CORPUS=data/asr_fed23
  synth "$EN_PLAN" "$EN_CORPUS" "$W_EN" 170 &
  synth "$FED_PLAN" "$FED_CORPUS" "$W_FED" 170 &
  wait
  log "rendered"
fi
TRAIN=""
for m in "$EN_CORPUS/train.jsonl" "${FED_CORPUS:-}/train.jsonl" data/flite_train/train.jsonl data/festival_train/train.jsonl; do
  [ -s "$m" ] && TRAIN="$TRAIN,\"$m\"" || log "missing $m"
done
TRAIN="[${TRAIN#,}]"; log "train on $TRAIN"
$PY scripts/init_from_whisper.py --recipe recipes/realtime_tiny.toml --whisper "$WHISPER_DIR" --out "$RUN.init" 2>&1 | tee -a "$OUT/run.log"
log "init built"
# shellcheck disable=SC2086  # EXTRA is a list of overrides
"$VOX" train recipes/realtime_tiny.toml train.out_dir="$RUN" model.init_from="$RUN.init" train.time_budget_s="$BUDGET" \
  tasks.asr.teacher="$WHISPER_DIR" tasks.asr.num_workers="$WORKERS" "tasks.asr.train=$TRAIN" $EXTRA > "$OUT/train.log" 2>&1
tail -n 3 "$OUT/train.log" | tee -a "$OUT/run.log"
log "trained"
"$VOX" export asr "$RUN" --tokenizer voxkit/assets/realtime-tiny --out "$RUN.export" --dtype float16 2>&1 | tail -3 | tee -a "$OUT/run.log"
[ -s "$RUN.export"/consolidated.safetensors ] || { log "no export: nothing to bring back"; exit 1; }
cp "$RUN.export"/*.json "$OUT/"  # params.json (and vocab_subset.json)
split -b 15m -d "$RUN.export/consolidated.safetensors" "$OUT/weights.part"
sha256sum "$RUN.export/consolidated.safetensors" | tee "$OUT/weights.sha256"
log "exported"
