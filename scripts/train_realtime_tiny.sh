#!/bin/bash
# Train the Whisper-initialised recogniser of recipes/realtime_tiny.toml in one call on a GPU
# machine that has torch but no package registry and a small transfer limit: render the espeak
# plans there, build the starting point, train for BUDGET seconds, export in float16 (split into
# parts under OUT for the trip back).
#
# What it expects in .carry/ (git-ignored) and .whl/ (wheels missing there: soundfile, cffi,
# pycparser, pyroomacoustics), made on a CPU machine (docs/asr.md, "Whisper-initialised recogniser"):
#   voxkit data synth --save-plan data/plans/en.jsonl.gz  --languages en       --hours 60 --seed 23
#   voxkit data synth --save-plan data/plans/fed.jsonl.gz --languages fr,es,de --hours 30 --seed 23
#   (their "split": "train" rows only -> .carry/en_train.jsonl.gz, .carry/fed_train.jsonl.gz)
#   bash scripts/espeak_kit.sh .carry/espeak_kit.tar.xz
#   python scripts/pack_for_device.py whisper-encoder .carry/whisper
#   python scripts/engine_corpus.py data/plans/en.jsonl.gz data/flite_train --engine flite --split train --hours 0.7 --seed 1
#   python scripts/engine_corpus.py data/plans/en.jsonl.gz data/festival_train --engine festival --split train --hours 0.6 --seed 2
#   python scripts/pack_for_device.py opus data/flite_train .carry/flite_train
#   python scripts/pack_for_device.py opus data/festival_train .carry/festival_train
# CPU dry run (tiny plans, one worker, the system's espeak-ng):
#   DRY=1 BUDGET=30 EN_PLAN=small_en.jsonl.gz FED_PLAN=small_fed.jsonl.gz EXTRA="tasks.asr.max_seconds=60" bash scripts/train_realtime_tiny.sh
set -uo pipefail
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-420}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
FED_PLAN=${FED_PLAN:-.carry/fed_train.jsonl.gz}
EXTRA=${EXTRA:-}
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/run.log"; }
if [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . > /tmp/pipe.log 2>&1 || { cat /tmp/pipe.log; exit 1; }
  PY="python3 -P"; VOX="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/voxkit"
  nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/run.log"
  W_EN=11; W_FED=5; WORKERS=14
else
  PY=".venv/bin/python -P"; VOX=".venv/bin/voxkit"; W_EN=1; W_FED=1; WORKERS=${WORKERS:-1}
fi
log "installed"
mkdir -p data
ln -sfn "$PWD/.carry/flite_train" data/flite_train
ln -sfn "$PWD/.carry/festival_train" data/festival_train
if [ -z "${DRY:-}" ]; then
  tar -xJf .carry/espeak_kit.tar.xz -C /tmp
  K=/tmp/espeak_kit
  synth() { LD_LIBRARY_PATH=$K/lib VOXKIT_ESPEAK_LIB=$K/lib/libespeak-ng.so.1 ESPEAK_DATA_PATH=$K "$VOX" data synth --quiet --format wav "$@"; }
else
  synth() { "$VOX" data synth --quiet --format wav "$@"; }
fi
timeout 170 bash -c "$(declare -f synth); K=${K:-}; VOX=$VOX; synth --plan $EN_PLAN --out data/asr_en23 --workers $W_EN" > /tmp/render_en.log 2>&1 &
timeout 170 bash -c "$(declare -f synth); K=${K:-}; VOX=$VOX; synth --plan $FED_PLAN --out data/asr_fed23 --workers $W_FED" > /tmp/render_fed.log 2>&1 &
wait
tail -n 3 /tmp/render_en.log /tmp/render_fed.log | tee -a "$OUT/run.log"
log "rendered"
TRAIN=""
for m in data/asr_en23/train.jsonl data/asr_fed23/train.jsonl data/flite_train/train.jsonl data/festival_train/train.jsonl; do
  [ -s "$m" ] && TRAIN="$TRAIN,\"$m\"" || log "missing $m"
done
TRAIN="[${TRAIN#,}]"; log "train on $TRAIN"
$PY scripts/init_from_whisper.py --recipe recipes/realtime_tiny.toml --whisper .carry/whisper --out runs/init_whisper 2>&1 | tee -a "$OUT/run.log"
log "init built"
$VOX train recipes/realtime_tiny.toml train.time_budget_s=$BUDGET tasks.asr.teacher=.carry/whisper \
  tasks.asr.num_workers=$WORKERS "tasks.asr.train=$TRAIN" $EXTRA 2>&1 | tee "$OUT/train.log" | grep -v "^\s*$" | tail -n 400 > /tmp/train_tail.log
log "trained"
$VOX export asr runs/realtime_tiny --tokenizer voxkit/assets/realtime-tiny --out /tmp/export --dtype float16 2>&1 | tail -3
cp /tmp/export/params.json "$OUT/params.json"
split -b 15m -d /tmp/export/consolidated.safetensors "$OUT/weights.part"
sha256sum /tmp/export/consolidated.safetensors | tee "$OUT/weights.sha256"
log "exported"
