"""Average the weights of several checkpoints of one model (the last few of a run, or runs fine-tuned from one start).

    python scripts/average_checkpoints.py RUN/checkpoints/step_00001300 RUN/checkpoints/step_00001400 --out runs/avg

A folder listed twice counts twice (the bundled recogniser is 2/3 stage 7 + 1/3 stage 10:
docs/asr.md). This writes a checkpoint folder in the first input's layout (voxkit.checkpoint.average_folders) that
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
