"""Plan a fine-tuning corpus whose sentences and voices stay out of the evaluation corpora.

The shipped recogniser's stage 16 and 16b (docs/asr.md) were planned with this script and
rendered on a GPU machine (docs/data.md, "Plan here, render elsewhere"):

    python scripts/plan_finetune.py pool   --en-hours 160 --fed-hours 40 --out data/plans/16     # stage 16
    python scripts/plan_finetune.py evalmix --entities 7000 --fed-rows 3000 \\
        --fed-plan data/plans/16/fed.jsonl.gz --out data/plans/16b                                 # stage 16b

Why a script and not `voxkit data synth --save-plan`: the evaluation corpora (`data/asr_en`, seed
1, and `data/asr_fed`, seed 2) were split with salts of their day, and their English is fortunes
and entity sentences only. Every row here is a training row under both salts, spoken by a voice
whose espeak variant appears in no dev or test manifest, and its sentence equals no dev or test
sentence. ``pool`` draws from today's whole English pool; ``evalmix`` takes the text kinds of the
evaluation corpora (every training-split fortune sentence twice, fresh entity sentences).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from voxkit.data.entities import entity_sentences
from voxkit.data.manifest import read_manifest
from voxkit.data.synth import SPLITS, VOICE_SPLITS, UttPlan, load_plan, plan_corpus, save_plan
from voxkit.data.text import (
    dedupe,
    dedupe_key,
    file_sentences,
    pick_split,
    source_files,
    stable_fraction,
    text_split,
)
from voxkit.data.voices import Voice, speaker_id, speaker_pool, utterance_voice
from voxkit.errors import VoxkitError

EVAL_CORPORA = ("data/asr_en", "data/asr_fed")


def train_under_seed2(sentence: str) -> bool:
    """The fr/es/de evaluation corpus was split with the salt that seed 2 used then."""
    return pick_split(stable_fraction(dedupe_key(sentence), "text2"), SPLITS) == "train"


def voice_ok(voice: Voice, held_variants: set[str]) -> bool:
    return pick_split(stable_fraction(voice.variant, "voice2"), VOICE_SPLITS) == "train" and voice.variant not in held_variants


def held_out(corpora: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """Dedupe keys of every dev/test sentence and the espeak variants of every dev/test voice."""
    sentences, variants = set(), set()
    for corpus in corpora:
        for split in ("dev", "test"):
            for row in read_manifest(Path(corpus) / f"{split}.jsonl", resolve=False):
                sentences.add(dedupe_key(row["text"]))
                variants.add(row["speaker"].split(":")[1])  # speaker_id(): "lang:variant:pP:gG:rR"
    return sentences, variants


def plan_pool(args: argparse.Namespace, held: set[str], variants: set[str]) -> None:
    en = [p for p in plan_corpus(["en"], args.en_hours, 16) if p.split == "train"]
    en = [p for p in en if voice_ok(p.voice, variants) and dedupe_key(p.text) not in held]
    fed = [p for p in plan_corpus(["fr", "es", "de"], args.fed_hours, 16) if p.split == "train"]
    fed = [p for p in fed if train_under_seed2(p.text) and voice_ok(p.voice, variants) and dedupe_key(p.text) not in held]
    save_plan(str(args.out / "en.jsonl.gz"), en, ["en"], args.en_hours, 16)
    save_plan(str(args.out / "fed.jsonl.gz"), fed, ["fr", "es", "de"], args.fed_hours, 16)
    print(f"{args.out}: {len(en)} English rows, {len(fed)} fr/es/de rows")


def plan_evalmix(args: argparse.Namespace, held: set[str], variants: set[str]) -> None:
    fortunes = dedupe(s for path in source_files("en") if "fortunes" in path for s in file_sentences(path, "en"))
    fortunes = [s for s in fortunes if text_split(s, SPLITS) == "train" and dedupe_key(s) not in held]
    entities = [s for s in dedupe(entity_sentences("en", args.entities * 2, 161))
                if text_split(s, SPLITS) == "train" and dedupe_key(s) not in held][: args.entities]
    speakers = [v for v in speaker_pool("en", "train", 400, VOICE_SPLITS, 161) if voice_ok(v, variants)]
    rng = random.Random("stage16b-en")
    plans = []
    for rep, texts in enumerate((fortunes, fortunes, entities)):
        for i, text in enumerate(texts):
            s = speakers[rng.randrange(len(speakers))]
            plans.append(UttPlan(f"en-train-b{rep}{i:05d}", "train", "en", text, speaker_id(s, "en"), utterance_voice(s, rng)))
    fed, *_ = load_plan(str(args.fed_plan))
    random.Random("stage16b-fed").shuffle(fed)
    save_plan(str(args.out / "en.jsonl.gz"), plans, ["en"], 0.0, 161)
    save_plan(str(args.out / "fed.jsonl.gz"), fed[: args.fed_rows], ["fr", "es", "de"], 0.0, 16)
    print(f"{args.out}: {len(fortunes)} fortunes x2 + {len(entities)} entity sentences on {len(speakers)} speakers, "
          f"{min(args.fed_rows, len(fed))} fr/es/de rows")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["pool", "evalmix"])
    p.add_argument("--out", type=Path, required=True, help="folder for en.jsonl.gz and fed.jsonl.gz")
    p.add_argument("--en-hours", type=float, default=160.0, help="pool: plan_corpus hours for English (all splits)")
    p.add_argument("--fed-hours", type=float, default=40.0, help="pool: plan_corpus hours for fr/es/de (all splits)")
    p.add_argument("--entities", type=int, default=7000, help="evalmix: fresh English entity sentences")
    p.add_argument("--fed-rows", type=int, default=3000, help="evalmix: rows taken from --fed-plan")
    p.add_argument("--fed-plan", type=Path, help="evalmix: the fr/es/de plan of a pool run")
    a = p.parse_args()
    if a.kind == "evalmix" and a.fed_plan is None:
        p.error("evalmix needs --fed-plan")
    try:
        held, variants = held_out(EVAL_CORPORA)
        a.out.mkdir(parents=True, exist_ok=True)
        (plan_pool if a.kind == "pool" else plan_evalmix)(a, held, variants)
    except (OSError, VoxkitError) as err:
        print(f"plan_finetune: {err} (run from the repository root, with the evaluation corpora in "
              f"{' and '.join(EVAL_CORPORA)}: docs/asr.md)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
