#!/bin/bash
# Back on the CPU machine after scripts/gpu_session.sh: rebuild the model folders from what came
# back (results.tgz and the weight parts of both calls), check every checksum, and list what to do
# next (docs/training.md, "A GPU session").
#
#   bash scripts/gpu_unpack.sh FILES_AT_OF_THE_SESSION_CALL FILES_AT_OF_THE_FETCH_CALL
#
# Writes runs/gpu/results/ (every log, the kernels' printout and JSON) and runs/gpu/{asr,codec,chat}/
# (folders that voxkit loads), unless DEST says otherwise. A model whose parts or checksum are
# missing or wrong is reported and skipped; the others are still unpacked.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: gpu_unpack.sh DIR [DIR...] (the folders the device calls' files came to)" >&2; exit 2; }
DEST=${DEST:-runs/gpu}
results=""
for dir in "$@"; do [ -s "$dir/results.tgz" ] && results="$dir/results.tgz"; done
[ -n "$results" ] || { echo "no results.tgz in $*" >&2; exit 1; }
mkdir -p "$DEST/results"
tar -xzf "$results" -C "$DEST/results"
status=0
for job in asr codec chat; do
  meta="$DEST/results/$job"; [ "$job" = chat ] && meta="$DEST/results/chat/whisper"
  parts=()
  for dir in "$@"; do for part in "$dir/$job".part*; do [ -e "$part" ] && parts+=("$part"); done; done
  if [ ${#parts[@]} -eq 0 ] || [ ! -s "$meta/weights.sha256" ]; then
    echo "$job: no weights came back (see $DEST/results/$job/run.log)"; continue
  fi
  mkdir -p "$DEST/$job"
  mapfile -t sorted < <(printf '%s\n' "${parts[@]}" | sort)
  cat "${sorted[@]}" > "$DEST/$job/consolidated.safetensors"
  cp "$meta"/*.json "$DEST/$job/"
  want=$(cut -d' ' -f1 "$meta/weights.sha256"); got=$(sha256sum "$DEST/$job/consolidated.safetensors" | cut -d' ' -f1)
  if [ "$want" = "$got" ]; then
    echo "$job: $DEST/$job ($(du -h "$DEST/$job/consolidated.safetensors" | cut -f1), checksum ok)"
  else
    echo "$job: CHECKSUM MISMATCH ($want expected, $got assembled from ${#parts[@]} parts)"; status=1
  fi
done
[ -s "$DEST/results/kernels.txt" ] && echo "kernels: $DEST/results/kernels.txt (its markdown block goes to docs/benchmarks.md)"
exit $status
