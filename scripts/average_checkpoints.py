"""Average the weights of several checkpoints of one run (the last few usually beat the last one).

    python scripts/average_checkpoints.py runs/asr_tiny_new10/checkpoints/step_0000{1300,1400,1500} --out runs/avg

writes a checkpoint folder in the first input's layout (voxkit.checkpoint.average_folders) that
`voxkit export asr` and `+model.init_from=` take like any other.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from voxkit.checkpoint import average_folders
    from voxkit.errors import VoxkitError

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="checkpoint folders of the same model")
    p.add_argument("--out", required=True, help="folder for the averaged checkpoint")
    a = p.parse_args()
    try:
        out = average_folders(a.checkpoints, a.out)
    except VoxkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"averaged {len(a.checkpoints)} checkpoints into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
