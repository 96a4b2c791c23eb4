"""Widen a published recogniser folder (e.g. the bundled float16 model) into a float32 training checkpoint.

    python scripts/bundle_to_checkpoint.py voxkit/assets/realtime-tiny runs/init_bundle
    voxkit train recipes/asr_tiny.toml +model.init_from=runs/init_bundle model.ctc_head=false ...

Why: ``model.init_from`` starts a run from a training checkpoint (module keys, float32); a published
folder stores the published keys at its storage precision. Fine-tuning the shipped model needs
this conversion and nothing else (the training-only CTC head is not in a published folder, so the
run must not enable it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="published recogniser folder (params.json + consolidated.safetensors)")
    p.add_argument("out", help="training checkpoint folder to write")
    a = p.parse_args(argv)

    from voxkit.asr.checkpoint import RECOGNIZER_MODEL, load_recognizer
    from voxkit.checkpoint import write_folder
    from voxkit.errors import VoxkitError

    out = Path(a.out)
    try:
        if out.is_dir() and any(out.iterdir()):
            raise VoxkitError(f"{out} is not empty")
        model = load_recognizer(a.model, dtype=torch.float32)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        write_folder(out, "training", model.export_config(), state, model=RECOGNIZER_MODEL)
    except VoxkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(state)} tensors, {sum(v.numel() for v in state.values()) / 1e6:.2f} M parameters, float32")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
