"""Synthesis: exact word timings from libespeak-ng, every language, splits, resume."""

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from voxkit.audio.io import load_audio
from voxkit.data.align import _fill_merged, align_words
from voxkit.data.espeak import Voice, get_engine
from voxkit.data.manifest import check_manifest, read_manifest
from voxkit.data.synth import build_corpus, plan_corpus, render
from voxkit.data.text import LANGUAGES, spoken_words

SENTENCES = {
    "en": "The old lighthouse keeper, tired and happy, walked home slowly.",
    "fr": "Le vieux gardien du phare, fatigué mais heureux, rentrait lentement.",
    "es": "El viejo guardián del faro, cansado y feliz, volvió a casa despacio.",
    "de": "Der alte Leuchtturmwärter, müde und glücklich, ging langsam nach Hause.",
    "it": "Il vecchio guardiano del faro, stanco e felice, tornò a casa piano.",
    "pt": "O velho faroleiro, cansado e feliz, voltou para casa devagar.",
    "nl": "De oude vuurtorenwachter, moe en gelukkig, liep langzaam naar huis.",
    "pl": "Stary latarnik, zmęczony i szczęśliwy, wracał powoli do domu.",
}


def _energy_in_out(wav: np.ndarray, words: list[dict], sr: int, min_pause_s: float = 0.02) -> tuple[float, float]:
    """Mean energy inside words, and in the pauses between them (gaps of at least ``min_pause_s``:
    in connected speech adjacent words meet within a few ms, and those junctions are speech)."""
    inside = np.zeros(wav.size, bool)
    pause = np.zeros(wav.size, bool)
    for w in words:
        inside[int(w["start"] * sr) : int(w["end"] * sr)] = True
    for a, b in itertools.pairwise(words):
        if b["start"] - a["end"] >= min_pause_s:
            pause[int(a["end"] * sr) : int(b["start"] * sr)] = True
    e = wav**2
    return float(e[inside].mean()), float(e[pause].mean()) if pause.any() else 0.0


def test_utf8_text_position_is_a_character_offset():
    text = "Où êtes-vous? Größere Brücke."
    _, events = get_engine().synth(text, Voice("fr"))
    starts = [e.char_start for e in events if e.char_len > 0]
    assert text[starts[1] : starts[1] + 4] == "êtes"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_every_language_renders_with_exact_words(lang):
    text = SENTENCES[lang]
    result = render(text, Voice(LANGUAGES[lang].espeak, "m3"), (16000, 24000))
    assert result is not None
    audio, words = result
    wav = audio[16000]
    assert wav.dtype == np.float32 and np.isfinite(wav).all() and wav.size > 16000
    assert audio[24000].size == pytest.approx(wav.size * 1.5, abs=2)
    assert [w["word"] for w in words] == spoken_words(text)
    dur = wav.size / 16000
    prev_end = 0.0
    for w in words:
        assert prev_end <= w["start"] < w["end"] <= dur
        prev_end = w["end"]
    # The comma pauses are gaps: the signal between words is much quieter than inside them.
    e_in, e_gap = _energy_in_out(wav, words, 16000)
    assert e_in > 10 * e_gap


def test_words_espeak_merges_into_one_event_are_kept_in_order():
    """English "such as", "do not", "of a": espeak reports one event for two words (or a second
    one pointing into the first word); the utterance is kept and every word gets its own span."""
    text = "Things such as this do not go to one of a kind place."
    pcm, events = get_engine().synth(text, Voice("en-us"))
    words = align_words(text, pcm, events, get_engine().sample_rate)
    assert words is not None and [w["word"] for w in words] == spoken_words(text)
    starts = [w["start"] for w in words]
    assert all(a < b for a, b in itertools.pairwise(starts))
    assert all(w["start"] < w["end"] for w in words)


def test_fill_merged_prefers_espeak_events_then_interpolates_by_characters():
    spans = [(0, 4, "aaaa"), (5, 7, "bb"), (8, 10, "cc"), (11, 15, "dddd")]
    starts = [0, None, None, 1100]
    assert _fill_merged(starts, spans, {0: [700]})  # the first word's second event goes to "bb"
    assert starts[:2] == [0, 700] and 700 < starts[2] < 1100
    starts = [0, None, None, 1100]
    assert _fill_merged(starts, spans, {})
    assert starts == [0, 500, 800, 1100]  # by character position between the events
    for bad in ([None, 1, 2, 3], [0, 1, 2, None], [0, None, None, None]):
        assert not _fill_merged(list(bad), spans, {})  # first/last word without event, or too long a run


# The shared corpus: planned once (an English plan draws ~50k entity sentences, the slow part) and
# rendered once for the module; the resume test re-runs the build with the same plan.
CORPUS = {"languages": ["en", "it"], "hours": 0.03, "seed": 3}


@pytest.fixture(scope="module")
def corpus_plan():
    return plan_corpus(CORPUS["languages"], CORPUS["hours"], CORPUS["seed"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, corpus_plan):
    out = str(tmp_path_factory.mktemp("corpus"))
    summary = build_corpus(out, **CORPUS, workers=2, chunk_size=8, progress=False, plans=corpus_plan)
    return out, summary


def test_corpus_manifests_and_timings(corpus):
    out, summary = corpus
    assert summary["utterances"] > 10 and summary["disk_bytes"] > 0
    rows = {s: read_manifest(os.path.join(out, f"{s}.jsonl")) for s in ("train", "dev", "test")}
    assert all(rows[s] for s in rows)
    for s in rows:
        report = check_manifest(os.path.join(out, f"{s}.jsonl"), decode=True)
        assert report.problems == [] and report.good == len(rows[s])
    e_in = e_gap = 0.0
    for row in rows["train"][:12]:
        assert row["sample_rate"] == 16000 and set(row) >= {"audio", "text", "language", "speaker", "duration", "words"}
        wav = load_audio(row["audio"], 16000).numpy()
        assert abs(wav.size / 16000 - row["duration"]) < 1e-3
        assert " ".join(w["word"] for w in row["words"]) == " ".join(spoken_words(row["text"]))
        a, b = _energy_in_out(wav, row["words"], 16000)
        e_in, e_gap = e_in + a, e_gap + b
    assert e_in > 10 * e_gap


def test_held_out_sentences_and_voices(corpus):
    out, _ = corpus
    rows = {s: read_manifest(os.path.join(out, f"{s}.jsonl")) for s in ("train", "dev", "test")}
    variants = {s: {r["speaker"].split(":")[1] for r in rows[s]} for s in rows}
    texts = {s: {r["text"] for r in rows[s]} for s in rows}
    for held in ("dev", "test"):
        assert not variants[held] & variants["train"]
        assert not texts[held] & texts["train"]
    assert not variants["dev"] & variants["test"]


def test_plans_with_other_seeds_and_languages_agree_on_what_is_held_out():
    """A plan's seed draws sentences and speakers; it must not move sentences or voices between
    splits, or new training data made with another seed (or another language's corpus) would
    contain an older corpus's test sentences or test voices."""
    plans = {seed: plan_corpus(["it", "pt"], 0.05, seed) for seed in (1, 7)}
    held = {(p.language, p.text) for ps in plans.values() for p in ps if p.split != "train"}
    held_voices = {p.voice.variant for ps in plans.values() for p in ps if p.split != "train"}
    for ps in plans.values():
        train = [p for p in ps if p.split == "train"]
        assert train and not {(p.language, p.text) for p in train} & held
        assert not {p.voice.variant for p in train} & held_voices  # across languages too


def test_resume_skips_existing(corpus, corpus_plan):
    out, first = corpus

    def rebuild() -> dict:  # the same build again (the plan is a pure function of its arguments)
        return build_corpus(out, **CORPUS, workers=1, chunk_size=8, progress=False, plans=corpus_plan)

    again = rebuild()
    assert again["rendered_now"] == 0
    assert again["utterances"] == first["utterances"]
    # Losing one audio file re-renders exactly that utterance.
    row = read_manifest(os.path.join(out, "train.jsonl"))[0]
    os.remove(row["audio"])
    third = rebuild()
    assert third["rendered_now"] == 1 and os.path.isfile(row["audio"])
    assert third["rendered_hours"] == round(row["duration"] / 3600, 4)  # the throughput counts only this run's audio
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["utterances"] == first["utterances"]
    # A row rendered with another voice than the plan now gives (same id and text) is redone.
    shards = sorted(os.path.join(out, "shards", n) for n in os.listdir(os.path.join(out, "shards")))
    every_id = [json.loads(line)["id"] for path in shards for line in Path(path).read_text(encoding="utf-8").splitlines()]
    shard = shards[0]
    rows = [json.loads(line) for line in Path(shard).read_text(encoding="utf-8").splitlines()]
    victim = next(r for r in rows if not r.get("rejected") and every_id.count(r["id"]) == 1)  # no newer copy
    victim["speaker"] = "en:someone-else:p1:g1:r1"
    with open(shard, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    fourth = rebuild()
    assert fourth["rendered_now"] == 1 and fourth["utterances"] == first["utterances"]
    redone = {r["id"]: r for r in read_manifest(os.path.join(out, f"{victim['split']}.jsonl"))}[victim["id"]]
    assert redone["speaker"] != victim["speaker"]


def test_plan_does_not_depend_on_python_hash_seed():
    import subprocess
    import sys

    code = ("import hashlib; from voxkit.data.synth import plan_corpus; "
            "print(hashlib.md5(repr(plan_corpus(['it'], 0.05, 0)).encode()).hexdigest())")
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(s)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [proc.communicate() for proc in procs]  # both ran at once
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    outs = {out for out, _ in results}
    assert len(outs) == 1 and outs != {""}


def test_saved_plan_renders_the_same_corpus(tmp_path, capsys):
    """Plan here, render elsewhere: --save-plan then --plan gives the same manifests and audio bytes.

    Both sides render with one worker, each in a fresh process: libespeak-ng carries some internal
    state from one utterance to the next, so samples are only reproducible for the same sequence
    of utterances rendered by a fresh engine. Two languages without English: the round trip does not
    depend on the language, and an English plan takes far longer to make (its entity sentences).
    """
    import subprocess
    import sys

    from voxkit.cli.main import main

    def fresh(name: str, *argv: str) -> tuple[subprocess.Popen, Path]:
        code = f"from voxkit.cli.main import main; raise SystemExit(main({list(argv)!r}))"
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as f:
            return subprocess.Popen([sys.executable, "-c", code], stdout=f, stderr=subprocess.STDOUT), log

    def finish(proc: subprocess.Popen, log: Path) -> None:
        assert proc.wait() == 0, log.read_text(errors="replace")

    common = ["--workers", "1", "--quiet"]
    corpus = ["--languages", "it,pt", "--hours", "0.02", "--seed", "3"]
    direct, again, plan = tmp_path / "direct", tmp_path / "again", tmp_path / "plan.jsonl.gz"
    direct_run = fresh("direct", "data", "synth", "--out", str(direct), *corpus, *common)  # runs meanwhile
    try:
        assert main(["data", "synth", "--save-plan", str(plan), *corpus]) == 0
        assert "render it with" in capsys.readouterr().out
        finish(*fresh("again", "data", "synth", "--plan", str(plan), "--out", str(again), *common))
    except BaseException:
        direct_run[0].kill()
        direct_run[0].wait()
        raise
    finish(*direct_run)
    assert {r["language"] for r in read_manifest(str(again / "train.jsonl"))} == {"it", "pt"}
    for split in ("train", "dev", "test"):
        assert (direct / f"{split}.jsonl").read_text() == (again / f"{split}.jsonl").read_text()
    for row in read_manifest(str(again / "train.jsonl")):
        with open(row["audio"], "rb") as f:
            assert f.read() == (direct / os.path.relpath(row["audio"], again)).read_bytes()
    # User mistakes: both flags, a file that is not a plan.
    assert main(["data", "synth", "--plan", str(plan), "--save-plan", str(plan)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip")
    assert main(["data", "synth", "--plan", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read the synth plan" in capsys.readouterr().err


def test_crash_in_espeak_costs_one_utterance(tmp_path, monkeypatch):
    """libespeak-ng can die on some (text, voice) pairs: the build records that utterance as
    rejected and goes on, instead of losing a worker and waiting forever for its chunk."""
    import signal

    from voxkit.data import synth

    plans = synth.plan_corpus(["it"], 0.01, 5)[:4]
    poison = plans[1].text
    real_render = synth.render

    def render_or_crash(text, voice, rates):
        if text == poison:
            os.kill(os.getpid(), signal.SIGSEGV)  # what the library does on a bad input
        return real_render(text, voice, rates)

    monkeypatch.setattr(synth, "render", render_or_crash)
    out = tmp_path / "c"
    summary = build_corpus(str(out), ["it"], hours=0.01, seed=5, workers=1, chunk_size=4, progress=False, plans=plans)
    rows = [json.loads(line) for line in (out / "shards" / "00000.jsonl").read_text().splitlines()]
    crashed = [r for r in rows if r.get("crashed")]
    assert [(r["id"], r["crashed"]) for r in crashed] == [(plans[1].id, signal.SIGSEGV)]
    kept = {r["text"] for split in ("train", "dev", "test") for r in read_manifest(str(out / f"{split}.jsonl"))}
    assert poison not in kept and summary["rejected"] >= 1
    assert summary["utterances"] + summary["rejected"] == 4  # the others rendered (or failed alignment)


def test_chunks_render_the_same_in_any_worker(tmp_path):
    """Each chunk renders in a child that starts from its worker's fresh engine, so the audio does
    not depend on how many workers there are or which one took a chunk."""
    a = build_corpus(str(tmp_path / "a"), ["it"], hours=0.02, seed=4, workers=2, chunk_size=3, progress=False)
    b = build_corpus(str(tmp_path / "b"), ["it"], hours=0.02, seed=4, workers=3, chunk_size=3, progress=False)
    assert a["utterances"] == b["utterances"] > 6
    for split in ("train", "dev", "test"):
        for row in read_manifest(str(tmp_path / "a" / f"{split}.jsonl")):
            with open(row["audio"], "rb") as f:
                assert f.read() == (tmp_path / "b" / os.path.relpath(row["audio"], tmp_path / "a")).read_bytes(), row["id"]


def test_save_plan_target_is_checked_before_planning(tmp_path, capsys):
    """--save-plan makes a missing folder, and refuses a folder or an unwritable place with one line."""
    from voxkit.cli.main import main

    corpus = ["--languages", "it", "--hours", "0.01", "--seed", "3"]
    nested = tmp_path / "plans" / "deep" / "it.jsonl.gz"
    assert main(["data", "synth", "--save-plan", str(nested), *corpus]) == 0
    captured = capsys.readouterr()
    assert nested.is_file() and "render it with" in captured.out
    assert "planning 0.01 h of it" in captured.err  # said before the silent part, not after it
    assert main(["data", "synth", "--save-plan", str(tmp_path), *corpus]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "synth", "--save-plan", str(blocker / "p.jsonl.gz"), *corpus]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
