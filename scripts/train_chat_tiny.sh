#!/bin/bash
# Train the small audio-chat model of recipes/chat_tiny.toml in one call on a GPU machine that has
# torch but no package registry and a small transfer limit: render the espeak plan there, build
# the instruction file (spoken questions included), train on Whisper tiny.en's encoder for BUDGET
# seconds, optionally the same model on the recogniser's causal encoder for CAUSAL_BUDGET seconds
# (recipes/chat_tiny_causal.toml), export each (float16; the Whisper encoder named, not copied),
# and split the weights into parts under OUT for the trip back.
#
# What it expects, made on a CPU machine (the same kit as scripts/train_codec_small.sh):
#   .carry/en_train.jsonl.gz       the "train" rows of data/plans/en.jsonl.gz (docs/data.md)
#   .carry/espeak_kit.tar.xz       bash scripts/espeak_kit.sh .carry/espeak_kit.tar.xz
#   .carry/whisper.bin.xz          Whisper tiny.en's encoder (pack_for_device.py whisper-encoder, xz)
#   .carry/tekken_240911.json.xz   the tokenizer file voxkit reads from mistral-common
#   .carry/flite_train, .carry/festival_train   (optional) pack_for_device.py opus ... --level 0.95
#   .whl/                          wheels the machine lacks: soundfile, cffi, pycparser
# (`bash scripts/device_kit.sh` makes all of it.) Knobs: BUDGET, CAUSAL_BUDGET, QUESTIONS, WORKERS
# (rendering), CORPUS (an English corpus rendered already), BATCH, EXTRA, DRY/PYTHON (scripts/device_env.sh).
# Then, back here, for each of OUT/whisper and OUT/causal: cat weights.part* > DIR/consolidated.safetensors,
# copy params.json and vocab_subset.json into DIR, check weights.sha256, and score the folders with
# voxkit eval chat (docs/chat.md).
# CPU dry run (a tiny plan, the system's espeak-ng, the packaged tiny.en):
#   DRY=1 BUDGET=30 CAUSAL_BUDGET=20 QUESTIONS=20 EN_PLAN=small_en.jsonl.gz DATA=/tmp/d RUNS=/tmp/r bash scripts/train_chat_tiny.sh
source scripts/device_env.sh
BUDGET=${BUDGET:-300}
CAUSAL_BUDGET=${CAUSAL_BUDGET:-0}
QUESTIONS=${QUESTIONS:-1500}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
EXTRA=${EXTRA:-}
DATA=${DATA:-data}; RUNS=${RUNS:-runs}
if [ -n "${DRY:-}" ]; then
  WORKERS=${WORKERS:-1}; BATCH=${BATCH:-2}; WHISPER=${WHISPER:-$WHISPER_DIR}
else
  WORKERS=${WORKERS:-14}; BATCH=${BATCH:-64}; WHISPER=${WHISPER:-$WHISPER_DIR}
fi
log "installed"
mkdir -p "$DATA"
if [ -z "${CORPUS:-}" ]; then
  CORPUS=$DATA/chat_corpus
  synth "$EN_PLAN" "$CORPUS" "$WORKERS" 170
  log "rendered"
fi
MANIFESTS="$CORPUS/train.jsonl"
for m in flite_train festival_train; do
  if [ -s ".carry/$m/train.jsonl" ]; then ln -sfn "$PWD/.carry/$m" "$DATA/$m"; MANIFESTS="$MANIFESTS $DATA/$m/train.jsonl"; fi
done
# shellcheck disable=SC2086  # the manifests are separate arguments; ESPEAK_ENV speaks the questions
env $ESPEAK_ENV "$VOX" data chat $MANIFESTS --out "$DATA/chat_en/train.jsonl" --per-row 2 --spoken-questions "$QUESTIONS" \
  --kinds transcribe=4,chat_transcribe=1.5,language=0.3,count_words=1,nth_word=1,two_audios=1,spoken_question=20,text_only=1 \
  2>&1 | tail -n 2 | tee -a "$OUT/run.log"
log "instructions built"

train_and_export() {  # NAME RECIPE BUDGET [overrides...]
  local name=$1 recipe=$2 budget=$3; shift 3
  "$VOX" train "$recipe" train.out_dir="$RUNS/$name" train.time_budget_s="$budget" "tasks.chat.train=[\"$DATA/chat_en/train.jsonl\"]" \
    "tasks.chat.dev=[]" tasks.chat.batch_size="$BATCH" "$@" $EXTRA 2>&1 | tee "$OUT/train_$name.log" | grep -v "^\s*$" | tail -n 3
  log "trained $name"
  "$VOX" export chat "$RUNS/$name" --out "$RUNS/$name.export" --dtype float16 2>&1 | tail -2 | tee -a "$OUT/run.log"
  [ -s "$RUNS/$name.export"/consolidated.safetensors ] || { log "no export: nothing to bring back"; return 1; }
  mkdir -p "$OUT/$name"
  # the encoder was read from a packed copy of the packaged tiny.en: name the package, as a CPU-trained folder does
  $PY - "$RUNS/$name.export/params.json" <<'EOF'
import json, sys
path = sys.argv[1]
params = json.load(open(path))
if params.get("voxkit_chat", {}).get("encoder_source") not in (None, "whisper-tiny.en"):
    params["voxkit_chat"]["encoder_source"] = "whisper-tiny.en"
json.dump(params, open(path, "w"), indent=2)
EOF
  cp "$RUNS/$name.export/params.json" "$RUNS/$name.export/vocab_subset.json" "$OUT/$name/"
  split -b 15m -d "$RUNS/$name.export/consolidated.safetensors" "$OUT/$name/weights.part"
  sha256sum "$RUNS/$name.export/consolidated.safetensors" | tee "$OUT/$name/weights.sha256"
  log "exported $name"
}
train_and_export whisper recipes/chat_tiny.toml "$BUDGET" model.encoder="$WHISPER"
if [ "$CAUSAL_BUDGET" -gt 0 ]; then
  train_and_export causal recipes/chat_tiny_causal.toml "$CAUSAL_BUDGET"
fi
log "done"
