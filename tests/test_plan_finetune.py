"""scripts/plan_finetune.py keeps every dev/test sentence and voice of the evaluation corpora out; scripts/plan_subset.py cuts plans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from voxkit.data.espeak import Voice
from voxkit.data.synth import VOICE_SPLITS
from voxkit.data.text import dedupe_key, pick_split, stable_fraction


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"audio": "a.flac", "duration": 1.0, **r}) + "\n" for r in rows), encoding="utf-8")


def test_held_out_collects_dev_and_test_sentences_and_variants(tmp_path: Path, load_script: Callable[[str], ModuleType]) -> None:
    pf = load_script("plan_finetune")
    _write(tmp_path / "en" / "dev.jsonl", [{"text": "Hello, World!", "speaker": "en:Marco:p45:g80:r150"}])
    _write(tmp_path / "en" / "test.jsonl", [{"text": "It's late.", "speaker": "en:john:p45:g80:r150"}])
    _write(tmp_path / "fed" / "dev.jsonl", [{"text": "Guten Tag.", "speaker": "de:f3:p45:g80:r150"}])
    _write(tmp_path / "fed" / "test.jsonl", [])
    sentences, variants = pf.held_out((str(tmp_path / "en"), str(tmp_path / "fed")))
    assert variants == {"Marco", "john", "f3"}
    # compared on spoken words: case and punctuation do not let a test sentence back in
    assert dedupe_key("hello world") in sentences and dedupe_key("its late") not in sentences
    assert dedupe_key("It's late") in sentences and dedupe_key("guten tag") in sentences


def test_voice_filter_needs_a_training_variant_under_both_salts_and_not_held(load_script: Callable[[str], ModuleType]) -> None:
    pf = load_script("plan_finetune")
    variants = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "max", "david"]
    for variant in variants:
        voice = Voice("en-us", variant)
        train2 = pick_split(stable_fraction(variant, "voice2"), VOICE_SPLITS) == "train"
        assert pf.voice_ok(voice, set()) == train2
        assert not pf.voice_ok(voice, {variant})


def test_plan_subset_slices_one_seeded_shuffle_of_a_split(
    tmp_path: Path, load_script: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    from voxkit.data.synth import UttPlan, load_plan, save_plan

    ps = load_script("plan_subset")
    voice = Voice("en-us", "m1")
    plans = [UttPlan(id=f"u{i}", split="test" if i % 2 else "train", language="fr" if i % 3 else "en", text=f"t {i}",
                     speaker="s", voice=voice) for i in range(60)]
    save_plan(str(tmp_path / "all.jsonl.gz"), plans, ["en", "fr"], 1.0, 7)

    def cut(name: str, *args: str) -> list[str]:
        assert ps.main([str(tmp_path / "all.jsonl.gz"), str(tmp_path / name), *args]) == 0
        return [u.id for u in load_plan(str(tmp_path / name))[0]]
    head = cut("a.gz", "--split", "test", "--seed", "23", "--rows", "0:10")
    tail = cut("b.gz", "--split", "test", "--seed", "23", "--rows", "10:")
    assert len(head) == 10 and not set(head) & set(tail) and len(head) + len(tail) == 30  # slices of one shuffle
    assert cut("c.gz", "--split", "test", "--seed", "23", "--rows", "0:10") == head  # the same seed, the same rows
    assert all(int(x[1:]) % 2 for x in head + tail)
    fr = cut("d.gz", "--split", "train", "--language", "fr", "--seed", "5")
    assert fr and all(int(x[1:]) % 2 == 0 and int(x[1:]) % 3 for x in fr)
    capsys.readouterr()
    assert ps.main([str(tmp_path / "all.jsonl.gz"), str(tmp_path / "e.gz"), "--split", "test", "--seed", "1", "--rows", "5"]) == 2
    assert ps.main([str(tmp_path / "all.jsonl.gz"), str(tmp_path / "e.gz"), "--split", "dev", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "expected START:STOP" in err and "no rows" in err
