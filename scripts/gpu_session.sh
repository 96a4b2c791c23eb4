#!/bin/bash
# One call on a lent GPU machine that does the work of four (docs/training.md, "A GPU session"):
# the fused kernels' checks and numbers (python -m voxkit.bench.kernels) on a few cores while the
# espeak corpora render on the others, then the recogniser (scripts/train_realtime_tiny.sh), the
# codec (scripts/train_codec_small.sh) and the audio-chat model (scripts/train_chat_tiny.sh)
# trained side by side on the one GPU from the same corpora.
#
# Why: a session is lent about 15 minutes of device time and each machine start costs one or two,
# so one full call is what a session gets. Rendering leaves the GPU idle, and these small models
# leave most of it idle too; side by side, each model trains for most of the call instead of one
# model per session.
#
#   run(command="bash scripts/gpu_session.sh", carry=[".carry", ".whl"], timeout_s=600)
#   run(command="bash scripts/gpu_session.sh fetch", timeout_s=60)   # AT ONCE: the codec's weights
#
# The trip back holds 8 files and 64 MiB, so OUT gets results.tgz (every log, the kernels' JSON and
# printout, params.json, vocab_subset.json, checksums), the recogniser's weights (asr.part*) and the
# chat model's (chat.part*); the codec's wait in /tmp/keep for the second call, which must come
# before the machine goes back (30 s after a call). Back here: scripts/gpu_unpack.sh.
#
# Knobs: TOTAL (seconds the call may take, default 570 of a 600 s call), RENDER (seconds of
# rendering, 150), KERNEL_BUDGET (the bench's budget, 150; 0 skips it), JOBS (default
# "asr codec chat"), JOB_BUDGET (each job's training seconds instead of what is left), STOP_GRACE
# (seconds before TOTAL when a trainer still running is asked to stop and export, 45),
# ASR_EXTRA/CODEC_EXTRA/CHAT_EXTRA (recipe overrides per job), DRY/PYTHON
# (scripts/device_env.sh; a dry run also shrinks every size).
# CPU dry run (tiny plans, in an environment holding only the GPU image's packages, from a copy of
# the tree: the jobs write data/ and runs/ where they run): docs/training.md, "Dry runs in an
# environment like the GPU image". It writes fixed paths under /tmp (/tmp/site, /tmp/espeak_kit,
# /tmp/voxkit_whisper, /tmp/render_*.log, /tmp/pipe.log): one dry run per machine at a time.
KEEP=${KEEP:-/tmp/keep}
if [ "${1:-}" = "fetch" ]; then  # the second call: what did not fit the first trip back
  cp "$KEEP"/fetch/* "${OUT:?}/" && ls -l "$OUT"
  exit
fi
rm -rf "$KEEP"; mkdir -p "$KEEP/fetch"
OUT_FINAL=${OUT:-/tmp/out}; mkdir -p "$OUT_FINAL"
OUT=$KEEP
source scripts/device_env.sh
TOTAL=${TOTAL:-570}
RENDER=${RENDER:-150}
KERNEL_BUDGET=${KERNEL_BUDGET:-150}
JOBS=${JOBS:-asr codec chat}
EN_PLAN=${EN_PLAN:-.carry/en_train.jsonl.gz}
FED_PLAN=${FED_PLAN:-.carry/fed_train.jsonl.gz}
CORES=$(nproc)
command -v taskset > /dev/null || taskset() { shift 2; "$@"; }  # no util-linux: no pinning
log "$CORES cores; jobs: $JOBS"

# 1. The kernels on 4 cores (their build and launches) while espeak renders on the rest.
BENCH_PID=""
if [ "$KERNEL_BUDGET" -gt 0 ] && $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  VOXKIT_CACHE_DIR=/tmp/voxkit_cache taskset -c 0-3 timeout $((KERNEL_BUDGET + 30)) $PY -m voxkit.bench.kernels \
    --budget "$KERNEL_BUDGET" --out "$KEEP/kernels.json" > "$KEEP/kernels.txt" 2>&1 &
  BENCH_PID=$!
  RENDER_CORES="4-$((CORES - 1))"; W_RENDER=$((CORES - 4))
else
  log "kernel bench skipped (no GPU or KERNEL_BUDGET=0)"
  RENDER_CORES="0-$((CORES - 1))"; W_RENDER=$CORES
fi
[ -n "${DRY:-}" ] && W_RENDER=1
W_FED=$(( W_RENDER / 4 > 0 ? W_RENDER / 4 : 1 )); W_EN=$(( W_RENDER - W_FED > 0 ? W_RENDER - W_FED : 1 ))
mkdir -p data
export -f synth log; export OUT T0 VOX ESPEAK_ENV
taskset -c "$RENDER_CORES" bash -c 'synth "$@"' _ "$EN_PLAN" data/asr_en23 "$W_EN" "$RENDER" &
taskset -c "$RENDER_CORES" bash -c 'synth "$@"' _ "$FED_PLAN" data/asr_fed23 "$W_FED" "$RENDER" &
wait
log "rendered; kernel bench $( [ -n "$BENCH_PID" ] && tail -n 1 "$KEEP/kernels.txt" )"

# 2. The models side by side, each with a training budget that leaves time for its start and export.
START_AND_EXPORT=${START_AND_EXPORT:-100}
BUDGET=${JOB_BUDGET:-$(( TOTAL - ($(date +%s) - T0) - START_AND_EXPORT ))}
[ "$BUDGET" -ge 30 ] || { log "only $BUDGET s left for training: stopping"; BUDGET=0; JOBS=""; }
log "training budget $BUDGET s each"
if [ -n "${DRY:-}" ]; then LOADERS=1; else LOADERS=$(( CORES / 2 )); fi
export OMP_NUM_THREADS=2  # the trainers' own threads; the GPU does their arithmetic
declare -A PIDS=()
set -m  # each job in its own process group, so that the deadline can stop a job with its children
for job in $JOBS; do
  mkdir -p "$KEEP/$job"
  case $job in
    asr) OUT=$KEEP/asr BUDGET=$BUDGET EN_CORPUS=data/asr_en23 FED_CORPUS=data/asr_fed23 WORKERS=$LOADERS EXTRA=${ASR_EXTRA:-} \
           bash scripts/train_realtime_tiny.sh > "$KEEP/asr/script.log" 2>&1 & ;;
    codec) OUT=$KEEP/codec BUDGET=$BUDGET CORPUS=data/asr_en23 EXTRA=${CODEC_EXTRA:-} \
           bash scripts/train_codec_small.sh > "$KEEP/codec/script.log" 2>&1 & ;;
    chat) OUT=$KEEP/chat BUDGET=$BUDGET CORPUS=data/asr_en23 EXTRA=${CHAT_EXTRA:-} \
           bash scripts/train_chat_tiny.sh > "$KEEP/chat/script.log" 2>&1 & ;;
    *) log "unknown job $job"; continue ;;
  esac
  PIDS[$job]=$!
done
# At the deadline, a trainer still running is asked to stop (SIGTERM: it saves a checkpoint after the
# step in flight and returns, and its script exports that); a job still running STOP_GRACE seconds
# before the end is killed, and brings nothing back.
stop_trainer() {  # PGID: SIGTERM to the job's trainer, not to its data-loader processes (its children)
  local d stat rest state ppid pgrp p
  local -A parent_of=()
  for d in /proc/[0-9]*; do  # /proc, not pgrep: the GPU image need not have procps
    stat=$(cat "$d/stat" 2>/dev/null) || continue
    rest=${stat##*) }; read -r state ppid pgrp _ <<< "$rest"
    [ "$pgrp" = "$1" ] || continue
    case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in *"voxkit train "*) parent_of[${d#/proc/}]=$ppid ;; esac
  done
  for p in "${!parent_of[@]}"; do  # a loader's parent is a trainer; a trainer's is not
    [ -n "${parent_of[${parent_of[$p]}]:-}" ] || kill -TERM "$p" 2>/dev/null
  done
}
STOP_GRACE=${STOP_GRACE:-45}
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - T0 )) -lt $(( TOTAL - STOP_GRACE )) ]; do sleep 2; done
for job in "${!PIDS[@]}"; do
  if kill -0 "${PIDS[$job]}" 2>/dev/null; then log "$job still running at the deadline: asked to stop and export"; stop_trainer "${PIDS[$job]}"; fi
done
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - T0 )) -lt $(( TOTAL - 10 )) ]; do sleep 1; done
for job in "${!PIDS[@]}"; do
  if kill -0 "${PIDS[$job]}" 2>/dev/null; then log "$job still running at the end: killed"; kill -- -"${PIDS[$job]}"; fi
done
wait
for job in "${!PIDS[@]}"; do log "$job: $(tail -n 1 "$KEEP/$job/run.log" 2>/dev/null)"; done

# 3. The trip back: small files in one archive; weights as parts, the codec's held for the second call.
for part in "$KEEP"/asr/weights.part* "$KEEP"/chat/whisper/weights.part*; do
  [ -e "$part" ] || continue
  job=${part#"$KEEP"/}; mv "$part" "$OUT_FINAL/${job%%/*}.${part##*/weights.}"
done
for part in "$KEEP"/codec/weights.part*; do [ -e "$part" ] && mv "$part" "$KEEP/fetch/codec.${part##*/weights.}"; done
log "done"
tar -czf "$OUT_FINAL/results.tgz" -C "$KEEP" --exclude=./fetch .
ls -l "$OUT_FINAL" "$KEEP/fetch"
