"""Instruction data for the audio-chat model: every kind well formed, answers right by construction,
seeded determinism, speaker-disjoint held-out split, the JSONL file format, spoken questions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from voxkit.audio.io import audio_info, load_audio
from voxkit.audio.write import save_audio
from voxkit.chat.instructions import (
    FORMAT,
    KINDS,
    ChatExample,
    build_examples,
    ordinal,
    question_bank,
    question_families,
    read_examples,
    render_spoken_questions,
    split_by_speaker,
    write_examples,
)
from voxkit.data.manifest import read_manifest, write_manifest
from voxkit.data.text import spoken_words
from voxkit.errors import DataError

SR = 16000
SENTENCES = (
    ("en", "Of or relating to plants."),
    ("en", "Well, it's the hunter's moon -- again!"),
    ("fr", "Le vieux gardien rentrait lentement."),
    ("de", "Der alte Mann ging langsam nach Hause."),
    ("es", "El viejo volvió a casa despacio."),
    ("en", "They will feed everyone in his place.”"),
)
ORDINALS = {ordinal(n): n for n in range(1, 100)}


def _timed_words(text: str, duration: float) -> list[dict]:
    """Evenly spaced word timings, as a manifest's ``words`` list holds them."""
    words = spoken_words(text)
    step = duration / len(words)
    return [{"word": w, "start": round(i * step, 3), "end": round((i + 0.9) * step, 3)} for i, w in enumerate(words)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A tiny manifest (14 rows, 6 speakers, 4 languages) with generated audio; two rows ask a question."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(14):
        lang, text = SENTENCES[i % len(SENTENCES)]
        duration = 0.4 + 0.15 * i
        t = np.arange(int(duration * SR)) / SR
        wav = 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t) + 0.01 * rng.standard_normal(t.size)
        rel = f"audio/{lang}/utt-{i:03d}.flac"
        save_audio(root / rel, wav.astype(np.float32), SR)
        row = {"audio": rel, "text": text, "language": lang, "speaker": f"{lang}:v{i % 6}:p50", "duration": duration,
               "sample_rate": SR, "id": f"t-{i:03d}"}
        if i % 3:
            row["words"] = _timed_words(text, duration)  # the others fall back to the text's words
        if i in (4, 9):
            row.update(text="What is seven plus five?", answer="12", language="en")
        rows.append(row)
    write_manifest(root / "train.jsonl", rows)
    return root, read_manifest(root / "train.jsonl")


def _audio_paths(ex: ChatExample) -> list[str]:
    return [p["path"] for m in ex.messages if isinstance(m["content"], list) for p in m["content"] if p["type"] == "audio"]


def _check(ex: ChatExample) -> None:
    """OpenAI-style messages, roles alternating and ending with the user, audio files present."""
    assert ex.kind in KINDS and isinstance(ex.answer, str) and ex.answer and ex.source_ids
    roles = [m["role"] for m in ex.messages]
    assert roles[-1] == "user" and set(roles[::2]) == {"user"} and set(roles[1::2]) <= {"assistant"}
    audio = []
    for m in ex.messages:
        if isinstance(m["content"], str):
            assert m["content"]
            continue
        for part in m["content"]:
            assert set(part) == ({"type", "path"} if part["type"] == "audio" else {"type", "text"})
            if part["type"] == "audio":
                assert m["role"] == "user" and os.path.isfile(part["path"])
                audio.append(part["path"])
            else:
                assert part["text"]
    texts = [p for m in ex.messages if isinstance(m["content"], list) for p in m["content"] if p["type"] == "text"]
    expected_audio = {"transcribe": 1, "two_audios": 2, "text_only": 0}.get(ex.kind, 1)
    assert len(audio) == expected_audio and len(ex.source_ids) == max(1, expected_audio)
    if ex.kind == "transcribe":
        assert len(ex.messages) == 1 and not texts and ex.language in ("en", "fr", "de", "es")
    else:
        assert ex.language is None


def test_every_kind_is_well_formed(corpus):
    _, rows = corpus
    for kind in KINDS:
        examples = build_examples(rows, kinds={kind: 1.0}, seed=1, per_row=2)
        assert examples, kind
        assert {e.kind for e in examples} == {kind}
        for ex in examples:
            _check(ex)
    mixed = build_examples(rows, seed=2, per_row=8)
    assert {e.kind for e in mixed} == set(KINDS)  # the default mix uses every kind
    by_id = {r["id"]: r for r in rows}
    for ex in mixed:
        if ex.kind in ("transcribe", "chat_transcribe"):
            assert ex.answer == by_id[ex.source_ids[0]]["text"]
        elif ex.kind == "spoken_question":
            assert ex.answer == "12"
        elif ex.kind == "language":
            assert ex.answer in ("English", "French", "German", "Spanish")


def test_same_seed_same_examples_and_rows_do_not_reshuffle_each_other(corpus):
    _, rows = corpus
    a = build_examples(rows, seed=5, per_row=3)
    assert a == build_examples(rows, seed=5, per_row=3)
    assert a != build_examples(rows, seed=6, per_row=3)
    kinds = {k: 1.0 for k in KINDS if k != "two_audios"}  # the only kind that draws a partner row from the pool
    assert build_examples(rows[:5], kinds=kinds, seed=5) == build_examples(rows, kinds=kinds, seed=5)[:5]


def test_bad_kinds_are_refused(corpus):
    _, rows = corpus
    for kinds in ({"sing": 1.0}, {"transcribe": 0.0}, {"transcribe": -1.0}):
        with pytest.raises(DataError):
            build_examples(rows, kinds=kinds)


def test_word_questions_are_answered_from_the_words(corpus):
    root, _ = corpus
    text = "Well, it's the hunter's moon -- again!"
    expected = ["Well", "it's", "the", "hunter's", "moon", "again"]
    listed = {"audio": str(root / "audio/en/utt-001.flac"), "text": text, "duration": 2.0, "id": "w", "words": _timed_words(text, 2.0)}
    bare = {**listed, "id": "b", "words": None}  # no words list: the text's words, punctuation stripped
    for row in (listed, bare):
        (count,) = build_examples([row], kinds={"count_words": 1.0})
        assert count.answer == "6"
        seen = set()
        for seed in range(40):
            (ex,) = build_examples([row], kinds={"nth_word": 1.0}, seed=seed)
            question = ex.messages[0]["content"][-1]["text"]
            (n,) = [ORDINALS[w] for w in spoken_words(question) if w in ORDINALS]
            assert ex.answer == expected[n - 1]
            seen.add(n)
        assert seen == set(range(1, 7))  # every position asked, never one past the end


def test_text_only_chats_depend_on_the_first_answer(corpus):
    _, rows = corpus
    examples = build_examples(rows, kinds={"text_only": 1.0}, seed=0, per_row=12)
    two_turn = [e for e in examples if len(e.messages) == 3]
    assert two_turn and len(two_turn) < len(examples)
    for ex in two_turn:
        first, reply, second = ex.messages
        if second["content"].startswith("Add two"):
            assert ex.answer == str(int(reply["content"]) + 2)
        elif second["content"].startswith("Now write"):
            assert ex.answer == reply["content"].upper()
        else:
            assert ex.answer == str(sum(c.isalpha() for c in reply["content"]))


def test_held_out_split_has_unseen_speakers(corpus):
    _, rows = corpus
    train, held = split_by_speaker(rows, 0.34, seed=3)
    assert held and train and len(train) + len(held) == len(rows)
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in held}
    assert len({r["speaker"] for r in held}) == 2  # a third of the six speakers
    assert (train, held) == split_by_speaker(rows, 0.34, seed=3)
    held_ids = {r["id"] for r in held}
    for ex in build_examples(held, kinds={"two_audios": 1.0}, per_row=4):
        assert set(ex.source_ids) <= held_ids  # pairs never reach into training clips
    assert split_by_speaker(rows, 0.0) == (rows, [])
    with pytest.raises(DataError):
        split_by_speaker(rows, 1.0)


def test_jsonl_round_trip_with_relative_paths(corpus, tmp_path):
    root, rows = corpus
    examples = build_examples(rows, seed=4, per_row=3)
    out = root / "chat" / "train.jsonl"
    assert write_examples(out, examples) == len(examples)
    lines = out.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == FORMAT and header["examples"] == len(examples) and sum(header["kinds"].values()) == len(examples)
    stored = [p["path"] for line in lines[1:] for m in json.loads(line)["messages"] if isinstance(m["content"], list)
              for p in m["content"] if p["type"] == "audio"]
    assert stored and all(p.startswith("../audio/") for p in stored)
    assert read_examples(out) == examples
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)  # the data set travels with its audio
    for ex in read_examples(moved / "chat" / "train.jsonl"):
        _check(ex)
        assert all(p.startswith(str(moved)) for p in _audio_paths(ex))
    relative = ChatExample("chat_transcribe", [{"role": "user", "content": [{"type": "audio", "path": "audio/en/utt-000.flac"},
                                                                           {"type": "text", "text": "What is said?"}]}], "x", None, ["r"])
    write_examples(tmp_path / "rel.jsonl", [relative], audio_root=str(root))
    (back,) = read_examples(tmp_path / "rel.jsonl")
    assert back.messages[0]["content"][0]["path"] == str(root / "audio/en/utt-000.flac")
    with pytest.raises(DataError, match="example 0"):  # never write what cannot be read back
        write_examples(tmp_path / "bad.jsonl", [ChatExample("text_only", [{"role": "assistant", "content": "x"}], "y")])


GOOD = {"kind": "text_only", "messages": [{"role": "user", "content": "Hi"}], "answer": "Hello", "language": None, "source_ids": ["a"]}


def _file(*rows: object, header: object = None) -> bytes:
    lines = [json.dumps(header or {"format": FORMAT})] + [r if isinstance(r, str) else json.dumps(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"", "empty file"),
        (b"fLaC\x00\x00\x00\x22\x10\x00", ":1:"),
        (_file(GOOD, header={"format": "something-else/1"}), ":1:"),
        (_file(GOOD, '{"kind": '), ":3:"),
        (_file(GOOD, [1, 2]), ":3:"),
        (_file({**GOOD, "messages": []}), ":2:"),
        (_file({**GOOD, "messages": [{"role": "assistant", "content": "Hi"}]}), ":2:"),
        (_file({**GOOD, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}), ":2:"),
        (_file({**GOOD, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}), ":2:"),
        (_file({**GOOD, "answer": 3}), ":2:"),
        (_file(GOOD) + b"\xff\xfe{}\n", ":3:"),
    ],
)
def test_bad_files_give_one_line_data_errors(tmp_path, content, where):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_examples(path)
    message = str(info.value)
    assert where in message and "\n" not in message
    with pytest.raises(DataError, match="not found"):
        read_examples(tmp_path / "missing.jsonl")


def test_question_bank_has_one_answer_convention():
    bank = dict(question_bank())
    assert len(bank) == len(question_bank()) >= 300
    known = {"What is seven plus five?": "12", "What comes after Tuesday?": "Wednesday", "What is the opposite of hot?": "cold",
             "How many days are in a week?": "7", "What is twelve minus five?": "7", "What is nine times six?": "54",
             "What month comes before January?": "December", "How many letters are in the word elephant?": "8"}
    for question, answer in known.items():
        assert bank[question] == answer
    for question, answer in bank.items():
        assert question.endswith("?") and not any(c.isdigit() for c in question)  # spoken: numbers spelled out
        assert answer.isdigit() or answer.isalpha()
    assert sum(len(f) for f in question_families().values()) == len(bank)


def test_spoken_questions_render_real_audio(tmp_path):
    rows = render_spoken_questions(tmp_path / "sq", 4, seed=0)
    bank = dict(question_bank())
    assert len(rows) == 4 and len({r["text"] for r in rows}) == 4
    families = {q: name for name, family in question_families().items() for q, _ in family}
    assert len({families[r["text"]] for r in rows}) == 4  # topics in turn, not four sums
    for row in rows:
        assert row["answer"] == bank[row["text"]]
        sr, frames, _ = audio_info(row["audio"])
        assert sr == SR and abs(frames / sr - row["duration"]) < 1e-3
        wav = load_audio(row["audio"], SR).numpy()
        assert float(np.sqrt(np.mean(wav**2))) > 0.01  # speech, not silence
        assert [w["word"] for w in row["words"]] == spoken_words(row["text"])
        assert row["speaker"].startswith("en:") and row["language"] == "en"
    assert [r["id"] for r in read_manifest(tmp_path / "sq" / "questions.jsonl")] == [r["id"] for r in rows]
    again = render_spoken_questions(tmp_path / "again", 2, seed=0)
    assert [(r["text"], r["speaker"]) for r in again] == [(r["text"], r["speaker"]) for r in rows[:2]]
    examples = build_examples(rows, kinds={"spoken_question": 1.0})
    assert [e.answer for e in examples] == [r["answer"] for r in rows]
    for ex in examples:
        _check(ex)
