"""Cut a reproducible subset out of a synth plan: one split, one language, a seeded shuffle, a slice.

    python scripts/plan_subset.py data/plans/en.jsonl.gz data/plans/en_test400.jsonl.gz --split test --seed 23 --rows 0:400
    python scripts/plan_subset.py data/plans/fed.jsonl.gz data/plans/fr_train_a.jsonl.gz --split train --language fr --seed 5 --rows 0:700

Why: the evaluation sets and the fine-tuning rows of docs/data.md and docs/asr.md are slices of
one shuffled split of a plan (``random.Random(seed).shuffle`` of the split's rows in plan order).
Slices of the same shuffle never overlap, so a set made from rows 0:400 and one made from rows
400:1500 share no utterance, and the subset is rendered with ``voxkit data synth --plan``.
"""

from __future__ import annotations

import argparse
import random
import sys

from voxkit.data.synth import load_plan, save_plan
from voxkit.errors import VoxkitError


def parse_rows(text: str) -> slice:
    """``START:STOP`` (either side may be empty) -> a slice; a bad value is a user error, not a traceback."""
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise VoxkitError(f"--rows {text!r}: expected START:STOP, e.g. 0:400") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("plan", help="plan file written by `voxkit data synth --save-plan`")
    p.add_argument("out", help="plan file to write (.jsonl.gz)")
    p.add_argument("--split", required=True, choices=("train", "dev", "test"))
    p.add_argument("--language", help="keep only this language (default: all of the split)")
    p.add_argument("--seed", type=int, required=True, help="seed of the shuffle (random.Random(seed).shuffle)")
    p.add_argument("--rows", default=":", help="START:STOP slice of the shuffled rows (default: all)")
    a = p.parse_args(argv)
    try:
        rows = parse_rows(a.rows)
        plans, languages, hours, seed = load_plan(a.plan)
        chosen = [u for u in plans if u.split == a.split and (a.language is None or u.language == a.language)]
        random.Random(a.seed).shuffle(chosen)
        subset = chosen[rows]
        if not subset:
            raise VoxkitError(f"no rows: the plan has {len(chosen)} {a.split} rows" + (f" in {a.language}" if a.language else ""))
        save_plan(a.out, subset, languages, hours, seed)
    except VoxkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{a.out}: {len(subset)} of {len(chosen)} {a.split} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
