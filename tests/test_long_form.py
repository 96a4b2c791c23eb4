"""Long-form evaluation: joining utterances into one stream, giving words back, scoring per minute."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import voxkit
from voxkit.asr.evaluate import utterance_errors
from voxkit.asr.long_form import (
    SHIFT_SAMPLES,
    LongFormResult,
    MinuteRow,
    Placement,
    assign_words,
    evaluate_long_form,
    format_long_form,
    join_utterances,
)
from voxkit.audio.io import load_audio

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"


def test_join_places_every_utterance_where_it_says() -> None:
    waves = [torch.full((1600 * (i + 1),), float(i + 1)) for i in range(3)]  # 0.1, 0.2, 0.3 s of constant values
    stream, placements = join_utterances(waves, ["a", "b", "c"], minutes=0.25, seed=1)  # 15 s
    assert stream.numel() <= 15 * 16000 and len(placements) >= 4
    assert [p.text for p in placements[:4]] == ["a", "b", "c", "a"]  # cycles through the utterances
    for p in placements:
        s, e = round(p.start * 16000), round(p.end * 16000)
        assert torch.equal(stream[s:e], waves[p.index])
        assert stream[s - 1] == 0  # a pause before every utterance
    assert all(a.end < b.start for a, b in zip(placements, placements[1:], strict=False))


def test_words_go_to_the_nearest_utterance_split_at_the_middle_of_each_pause() -> None:
    placements = [Placement(0, 1.0, 2.0, "x"), Placement(1, 3.0, 4.0, "y")]
    words = [("early", 0.5), ("one", 1.2), ("late", 2.4), ("marked", 2.96), ("two", 3.0), ("after", 9.0)]
    # "marked": the next utterance's first word, marked a step before its first sample
    assert assign_words(words, placements) == [["early", "one", "late"], ["marked", "two", "after"]]


def test_minutes_of_a_stream_are_scored_beside_the_utterances_alone() -> None:
    asr = voxkit.Transcriber()
    waves = [load_audio(SAMPLES / f"{n}.flac", 16000)[: 16000 * 3] for n in ("en", "es")]
    texts = ["Order number seven hundred", "placeholder reference words"]
    result = evaluate_long_form(asr.bundle.model, asr.bundle.tokenizer, waves, texts, minutes=0.25, delay=6, progress=False)
    rows = result.minutes
    _, placements = join_utterances(waves, texts, 0.25)
    assert [r.minute for r in rows] == [0] and rows[0].utterances == len(placements)
    alone = [asr.transcribe(w).text for w in waves]
    expected_alone = sum(utterance_errors(p.text, alone[p.index])[0] for p in placements)
    assert rows[0].alone_errors == expected_alone
    shifted = [asr.transcribe(torch.cat([torch.zeros(SHIFT_SAMPLES), w])).text for w in waves]
    assert rows[0].shifted_errors == sum(utterance_errors(p.text, shifted[p.index])[0] for p in placements)
    assert rows[0].reference_words == sum(len(p.text.split()) for p in placements)
    assert result.words == [len(p.text.split()) for p in placements]
    assert sum(result.stream_errors) == rows[0].stream_errors and sum(result.alone_errors) == expected_alone
    assert rows[0].rss_mb > 0
    table = format_long_form(result, 480)
    assert "| 1 |" in table and "worst minute: 1" in table and "all minutes: " in table
    assert "stream - alone: " in table and "yardstick: " in table
    assert "By blocks" not in table  # under 20 minutes: no blocks table


def test_blocks_of_ten_minutes_carry_the_change_and_its_interval() -> None:
    # 25 minutes, 4 utterances of 10 words each per minute; the stream adds one error per
    # utterance in minutes 11-20 only, so only that block's change is +10 points with no spread.
    minute_of = [m for m in range(25) for _ in range(4)]
    alone = [2] * len(minute_of)
    stream = [3 if 10 <= m < 20 else 2 for m in minute_of]
    minutes = [MinuteRow(m, 4, 40, sum(stream[4 * m : 4 * m + 4]), 8, 100.0, 8) for m in range(25)]
    result = LongFormResult(minutes, minute_of, [10] * len(minute_of), stream, alone)
    lines = format_long_form(result, 480).splitlines()
    start = lines.index("| minutes | utterances | words | stream WER | alone WER | stream - alone |")
    assert lines[start + 2 :] == [
        "| 1–10 | 40 | 400 | 20.0 | 20.0 | +0.0 [+0.0, +0.0] |",
        "| 11–20 | 40 | 400 | 30.0 | 20.0 | +10.0 [+10.0, +10.0] |",
        "| 21–25 | 20 | 200 | 20.0 | 20.0 | +0.0 [+0.0, +0.0] |",
    ]
    assert "10 of 25 minutes above 1.2x alone" in "\n".join(lines)
    assert "put 0 of 25 minutes above 1.2x the first alone run" in "\n".join(lines)


def test_eval_cli_prints_the_long_form_table(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import json

    from voxkit.cli.main import main

    manifest = tmp_path / "m.jsonl"
    rows = [{"audio": str(SAMPLES / "en.flac"), "text": "Order number seven hundred", "language": "en"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "asr", str(manifest), "--long-form", "0.3", "--delays", "480", "--quiet", "--output", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert "Long-form stream at 480 ms" in out and "| 1 |" in out
    assert (tmp_path / "t.md").read_text().startswith("Long-form stream at 480 ms")
    assert main(["eval", "asr", str(manifest), "--long-form", "-1"]) == 2


def test_a_cycled_utterance_is_resampled_with_its_repeats() -> None:
    # A 25-minute stream made of 5 utterances heard 20 times each: the whole-stream interval and
    # every block's are those of 5 utterances, not of 100, and the text says so.
    minute_of = [m for m in range(25) for _ in range(4)]
    used = [i % 5 for i in range(len(minute_of))]
    words = [10 + u for u in used]
    alone = [2 + (u % 2) for u in used]
    stream = [a + (1 if u in (0, 3) else 0) for a, u in zip(alone, used, strict=True)]
    minutes = [MinuteRow(m, 4, sum(words[4 * m : 4 * m + 4]), sum(stream[4 * m : 4 * m + 4]),
                         sum(alone[4 * m : 4 * m + 4]), 100.0) for m in range(25)]
    result = LongFormResult(minutes, minute_of, words, stream, alone, used=used)
    total = result.summary()
    from voxkit.asr.evaluate import paired_change

    assert (total["change"], total["low"], total["high"]) == pytest.approx(paired_change(alone, stream, words, groups=used))
    independent = paired_change(alone, stream, words)
    assert total["high"] - total["low"] > 2 * (independent[2] - independent[1])
    table = format_long_form(result, 480)
    assert "distinct utterances, repeats resampled together" in table
    assert "resampled with its repeats" in table


def test_a_noise_floor_runs_through_the_stream_and_each_utterance_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Noise at an SNR is added to each utterance and leaves the pauses between them silent; a
    # floor (a microphone's) is under everything, so the pause cutter hears it in every pause.
    import numpy as np

    from voxkit.asr import segments
    from voxkit.asr.evaluate import FLOOR_SEED, with_floor

    quiet = with_floor(torch.zeros(64000), -50.0, seed=FLOOR_SEED)
    assert 10 * torch.log10(quiet.pow(2).mean()).item() == pytest.approx(-50.0, abs=0.05)
    assert torch.equal(quiet, with_floor(torch.zeros(64000), -50.0, seed=FLOOR_SEED))

    pushed: list[np.ndarray] = []
    alone_heard: list[torch.Tensor] = []
    real_stream, real_alone = segments.SegmentedStream, segments.transcribe_segmented

    class Recording(real_stream):  # type: ignore[misc, valid-type]
        def push(self, samples: np.ndarray) -> list:
            pushed.append(np.array(samples))
            return super().push(samples)

    def alone(model, tokenizer, waves, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        alone_heard.extend(waves)
        return real_alone(model, tokenizer, waves, *args, **kwargs)

    monkeypatch.setattr(segments, "SegmentedStream", Recording)
    monkeypatch.setattr(segments, "transcribe_segmented", alone)
    asr = voxkit.Transcriber()
    waves = [load_audio(SAMPLES / f"{n}.flac", 16000)[: 16000 * 2] for n in ("en", "es")]
    texts = ["order number seven", "el viernes"]
    evaluate_long_form(asr.bundle.model, asr.bundle.tokenizer, waves, texts, minutes=0.2, delay=6, progress=False,
                       floor_dbfs=-50.0)
    stream = torch.from_numpy(np.concatenate(pushed))  # [N]
    _, placements = join_utterances(waves, texts, 0.2)
    for a, b in zip(placements, placements[1:], strict=False):  # every pause between two utterances
        pause = stream[round(a.end * 16000) : round(b.start * 16000)]
        assert 10 * torch.log10(pause.pow(2).mean()).item() == pytest.approx(-50.0, abs=0.5)
    s = round(placements[0].start * 16000)
    assert torch.allclose(stream[s : s + 32000], waves[0], atol=0.02)  # the speech is there (noise RMS 0.003)
    assert not torch.equal(stream[s : s + 32000], waves[0])  # ... under the floor
    used = sorted({p.index for p in placements})
    assert len(alone_heard) == 2 * len(used)  # alone, then alone again 20 ms later: each over the floor too
    for heard, i in zip(alone_heard[: len(used)], used, strict=True):
        assert 10 * torch.log10((heard - waves[i]).pow(2).mean()).item() == pytest.approx(-50.0, abs=0.1)
