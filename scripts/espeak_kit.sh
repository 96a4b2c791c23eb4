#!/usr/bin/env bash
# Pack libespeak-ng, the shared libraries it links to (its closure, minus glibc) and the
# espeak-ng-data files voxkit's languages need into one tar.xz (~4 MB), so that a plan saved with
# `voxkit data synth --save-plan` can be rendered on a machine without espeak-ng (a GPU box with no
# package manager). The archive holds this machine's Debian binaries: carry it, never commit it.
#
#   bash scripts/espeak_kit.sh espeak_kit.tar.xz
#   # on the other machine:
#   tar -xJf espeak_kit.tar.xz -C /tmp
#   export LD_LIBRARY_PATH=/tmp/espeak_kit/lib VOXKIT_ESPEAK_LIB=/tmp/espeak_kit/lib/libespeak-ng.so.1 \
#          ESPEAK_DATA_PATH=/tmp/espeak_kit
#   voxkit data synth --plan plan.jsonl.gz --out data/corpus --workers 16
set -euo pipefail
OUT=${1:?usage: espeak_kit.sh OUT.tar.xz}
LIB=$(ldconfig -p | awk '/libespeak-ng\.so\.1 / {print $NF; exit}')
[ -n "$LIB" ] || { echo "espeak_kit: libespeak-ng.so.1 not found (apt-get install libespeak-ng1)" >&2; exit 1; }
DATA=$(dirname "$(readlink -f "$LIB")")/espeak-ng-data
[ -d "$DATA" ] || DATA=/usr/share/espeak-ng-data
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
K=$TMP/espeak_kit
mkdir -p "$K/lib" "$K/espeak-ng-data"
cp -L "$LIB" "$K/lib/libespeak-ng.so.1"
ldd "$LIB" | awk '/=>/ {print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt)\.so' | while read -r f; do cp -L "$f" "$K/lib/"; done
cp -r "$DATA"/{phondata,phontab,phonindex,intonations,voices,lang} "$K/espeak-ng-data/"
for l in en fr es de it pt nl pl; do cp "$DATA/${l}_dict" "$K/espeak-ng-data/"; done
tar -C "$TMP" -cJf "$OUT" espeak_kit
echo "espeak_kit: $OUT ($(du -h "$OUT" | cut -f1))"
