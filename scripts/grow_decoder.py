"""Grow a trained recogniser (silent twin layers, wider feed-forward, encoder delay gains) before fine-tuning.

    python scripts/grow_decoder.py runs/asr_tiny_mix/checkpoints/step_00000621 runs/grown --twins 2,3 --ffn-hidden 1536

writes a training checkpoint folder (config.json + model.safetensors) whose outputs equal the
input's (voxkit/asr/grow.py says how). Train from it with ``+model.init_from=runs/grown`` and the
grown shapes, e.g. ``model.decoder.n_layers=6 model.decoder.hidden_dim=1536``.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from voxkit.asr.grow import grow_checkpoint
    from voxkit.errors import VoxkitError

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="training checkpoint folder (config.json + model.safetensors)")
    p.add_argument("out", help="new checkpoint folder")
    p.add_argument("--twins", default="", help="comma-separated decoder layers that get a twin, e.g. 2,3")
    p.add_argument("--ffn-hidden", type=int, default=None, help="widen every decoder feed-forward to this many units")
    p.add_argument("--seed", type=int, default=0, help="seed of the new feed-forward rows")
    p.add_argument("--encoder-delay-gains", action="store_true", help="add silent Ada-RMSNorm delay conditioning to every encoder layer")
    a = p.parse_args()
    try:
        twins = [int(x) for x in a.twins.split(",") if x.strip()]
    except ValueError:
        p.error(f"--twins must be comma-separated layer numbers, got {a.twins!r}")
    try:
        params = grow_checkpoint(a.checkpoint, a.out, twins, a.ffn_hidden, a.seed, a.encoder_delay_gains)
    except VoxkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    conditioned = params["multimodal"]["whisper_model_args"]["encoder_args"].get("ada_rms_norm_t_cond", False)
    print(f"{a.checkpoint} -> {a.out}: {params['n_layers']} decoder layers, feed-forward {params['hidden_dim']} units"
          + (", delay-conditioned encoder" if conditioned else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
