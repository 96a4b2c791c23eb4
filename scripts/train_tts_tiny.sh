#!/bin/bash
# Train the small TTS model of recipes/tts_tiny.toml in one call on a GPU machine (torch, no package
# registry), export it with preset voices, and leave the folder under OUT for the trip back.
#
# The codec comes first (scripts/train_codec_small.sh, issue 6/11): the TTS model speaks in its
# codes, so a better codec means a better TTS model. What this script expects, made on a CPU machine
# with THAT codec (docs/tts.md, "Training"):
#   .carry/codec            the exported codec folder (voxkit export codec RUN --out .carry/codec)
#   .carry/tts_en/train     voxkit data tts <manifests> --codec .carry/codec --out .carry/tts_en/train
#   .carry/tts_en/dev       the same for held-out voices (--limit 200)
#   .carry/voices/NAME.wav + NAME.txt   reference clips (and transcripts) of the preset voices
#   .whl/                   wheels the machine lacks: soundfile, cffi, pycparser, vector-quantize-pytorch, einx, ...
# Back here: copy OUT/tts-tiny to voxkit/assets/tts-tiny, delete its codec/ copy and set params.json
# voxkit_tts.codec to "../codec-small" (the bundled codec, one copy in the package; or re-export with
# --codec-link ../codec-small),
# score it with voxkit eval tts (docs/tts.md) and listen to OUT/samples/*.wav.
# CPU dry run: DRY=1 BUDGET=20 CARRY=/path/with/codec+tts_en+voices OUT=/tmp/o RUNS=/tmp/r bash scripts/train_tts_tiny.sh
source scripts/device_env.sh
BUDGET=${BUDGET:-480}
CARRY=${CARRY:-.carry}
RUNS=${RUNS:-runs}
if [ -n "${DRY:-}" ]; then BATCH=${BATCH:-4}; else BATCH=${BATCH:-64}; fi
log "installed"
"$VOX" train recipes/tts_tiny.toml model.codec="$CARRY/codec" "tasks.tts.train=[\"$CARRY/tts_en/train\"]" \
  "tasks.tts.dev=[\"$CARRY/tts_en/dev\"]" tasks.tts.batch_size="$BATCH" train.time_budget_s="$BUDGET" \
  train.out_dir="$RUNS/tts_tiny" train.progress=false > "$OUT/train.log" 2>&1
tail -n 3 "$OUT/train.log" | tee -a "$OUT/run.log"
log "trained"
VOICES=()
for wav in "$CARRY"/voices/*.wav; do
  [ -e "$wav" ] || continue
  name=$(basename "$wav" .wav); txt="${wav%.wav}.txt"
  VOICES+=(--voice "$name=$wav${txt:+:$(cat "$txt" 2>/dev/null)}")
done
"$VOX" export tts "$RUNS/tts_tiny" --out "$OUT/tts-tiny" --dtype float16 "${VOICES[@]}" 2>&1 | tee -a "$OUT/run.log"
mkdir -p "$OUT/samples"
for sentence in "The quick brown fox jumps over the lazy dog." "Please call me back when you have a moment."; do
  n=$(ls "$OUT/samples" | wc -l)
  "$VOX" speak "$sentence" --model "$OUT/tts-tiny" -o "$OUT/samples/$n.wav" --seed "$n" 2>&1 | tee -a "$OUT/run.log"
done
log "done"
