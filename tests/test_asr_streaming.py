"""Streaming recognition equals the offline full-sequence forward, token for token."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from asr_helpers import chirp, tiny_model
from voxkit.asr.features import SAMPLES_PER_STEP, LogMel
from voxkit.asr.session import StreamingSession
from voxkit.tokenizer import BOS_ID, STREAMING_PAD_ID, ByteTokenizer

TOK = ByteTokenizer()


def run_stream(model, wav: torch.Tensor, delay: int, chunks: list[int] | None = None) -> tuple[list[int], StreamingSession]:
    """All output tokens of one stream, pushing audio in the given chunk sizes."""
    session = StreamingSession(model, TOK, 1)
    session.start(0, delay)
    outputs: list[int] = []
    sizes = chunks or [wav.numel()]
    pos = 0
    for n in sizes:
        session.push(0, wav[pos : pos + n])
        pos += n
        while session.ready():
            session.step()
            outputs.append(int(session.prev[0]))
    session.finish(0)
    while session.active:
        session.step()
        outputs.append(int(session.prev[0]))
    session.close()
    return outputs, session


def offline_logits(model, wav: torch.Tensor, delay: int, outputs: list[int]) -> torch.Tensor:
    """Teacher-forced offline forward over the same framing, fed with the streamed outputs."""
    L = model.args.n_left_pad_tokens
    steps = len(outputs)
    audio = torch.zeros(steps * SAMPLES_PER_STEP + 40)
    audio[L * SAMPLES_PER_STEP : L * SAMPLES_PER_STEP + wav.numel()] = wav
    mel = LogMel()(audio[None])[..., : steps * 8]  # [1, 128, 8 P]
    prompt = 1 + L + delay
    tokens = [BOS_ID] + [STREAMING_PAD_ID] * (prompt - 1) + outputs[prompt - 1 : -1]
    with torch.no_grad():
        return model(mel, torch.tensor([tokens]), torch.tensor([float(delay)]))[0]  # [P, V]


def test_streaming_equals_offline_token_for_token() -> None:
    model = tiny_model()
    wav = chirp(1.9)
    outputs, _ = run_stream(model, wav, delay=3)
    L = model.args.n_left_pad_tokens
    assert len(outputs) == L + 24 + 3 + 1 + model.args.right_pad_tokens  # ceil(1.9 s / 80 ms) = 24 steps
    logits = offline_logits(model, wav, 3, outputs)
    first = L + 3  # outputs before this step are forced prompt positions
    assert logits[first:].argmax(-1).tolist() == outputs[first:]
    assert len(set(outputs[first:])) > 1  # the random model really emits several different tokens


def test_random_chunk_sizes_give_the_same_tokens() -> None:
    model = tiny_model()
    wav = chirp(1.5, seed=1)
    whole, _ = run_stream(model, wav, delay=2)
    rng = np.random.default_rng(0)
    sizes = list(rng.integers(1, 3000, size=40))
    chunked, _ = run_stream(model, wav, delay=2, chunks=sizes)
    step_sized, _ = run_stream(model, wav, delay=2, chunks=[SAMPLES_PER_STEP] * 20)
    assert whole == chunked == step_sized


def test_future_audio_never_changes_past_outputs() -> None:
    model = tiny_model()
    a = chirp(2.0, seed=2)
    b = a.clone()
    b[16000:] = chirp(1.0, seed=3)  # same first second, different second
    out_a, _ = run_stream(model, a, delay=4)
    out_b, _ = run_stream(model, b, delay=4)
    L = model.args.n_left_pad_tokens
    # Step t sees audio up to 1280 (t - L + 1) + 40 samples: the first 12 real steps are shared.
    shared = L + 12 - 1
    assert out_a[:shared] == out_b[:shared]
    assert out_a != out_b


def test_batched_streams_with_different_delays_match_each_alone() -> None:
    model = tiny_model()
    waves = [chirp(1.2, seed=4), chirp(2.1, seed=5), chirp(0.7, seed=6)]
    delays = [2, 5, 1]
    alone = [run_stream(model, w, d)[0] for w, d in zip(waves, delays, strict=True)]
    session = StreamingSession(model, TOK, 3)
    for b, (w, d) in enumerate(zip(waves, delays, strict=True)):
        session.start(b, d)
        session.push(b, w)
        session.finish(b)
    batched: list[list[int]] = [[], [], []]
    while session.active:
        active = session.active
        session.step()
        for b in active:
            batched[b].append(int(session.prev[b]))
    session.close()
    assert batched == alone


def test_restarting_one_slot_leaves_others_untouched() -> None:
    model = tiny_model()
    w0, w1 = chirp(1.6, seed=7), chirp(1.0, seed=8)
    session = StreamingSession(model, TOK, 2)
    session.start(0, 3)
    session.push(0, w0)
    session.finish(0)
    session.start(1, 3)
    session.push(1, chirp(0.5, seed=9))  # a stream that is abandoned half-way
    for _ in range(5):
        session.step()
    session.start(1, 3)  # restart slot 1 with new audio
    session.push(1, w1)
    session.finish(1)
    out1: list[int] = []
    while 1 in session.active:
        session.step()
        out1.append(int(session.prev[1]))
    session.close()
    assert out1 == run_stream(model, w1, 3)[0]


def test_delay_conditioned_encoder_streams_like_its_offline_forward() -> None:
    """voxkit's own recipes may condition the encoder on the delay too (DESIGN §4): the streaming
    session feeds each stream's delay to it, and streaming still equals the offline forward."""
    model = tiny_model(encoder_delay=True)
    assert model.encoder.transformer.layers[0].ada_rms_norm_t_cond is not None
    wav = chirp(1.9)
    for delay in (2, 5):
        outputs, _ = run_stream(model, wav, delay=delay)
        first = model.args.n_left_pad_tokens + delay
        assert offline_logits(model, wav, delay, outputs)[first:].argmax(-1).tolist() == outputs[first:]
    mel = torch.randn(1, 128, 64)
    with torch.no_grad():
        assert not torch.allclose(model.encoder(mel, torch.tensor([2.0])), model.encoder(mel, torch.tensor([5.0])))


def test_committed_word_drops_an_unfinished_character() -> None:
    """A word whose last byte starts a character that never arrives is committed without U+FFFD."""
    from voxkit.tokenizer import STREAMING_WORD_ID

    session = StreamingSession(tiny_model(), TOK, 1)
    session.start(0, 2)
    slot = session.slots[0]
    lead_byte = TOK.encode("é", bos=False)[0]  # 0xC3 alone
    for token in [STREAMING_WORD_ID, *TOK.encode("entié", bos=False), lead_byte]:
        session._on_token(0, slot, token, 0, False)
    events = session._close_word(0, slot, None, False)
    assert [e.text for e in events] == ["entié"]
    assert [w.text for w in session.transcript(0).words] == ["entié"]
    session.close()


def test_chunked_steps_give_the_tokens_of_single_steps() -> None:
    """``step(n)`` runs the encoder once over n steps (a file's audio is all there): same tokens,
    also across the encoder's ring buffer wrapping inside a chunk and with several slots."""
    model = tiny_model()
    waves = [chirp(2.3, seed=10), chirp(1.1, seed=11)]
    delays = [3, 1]
    alone = [run_stream(model, w, d)[0] for w, d in zip(waves, delays, strict=True)]
    session = StreamingSession(model, TOK, 2, chunk_steps=7)
    for b, (w, d) in enumerate(zip(waves, delays, strict=True)):
        session.start(b, d)
        session.push(b, w)
        session.finish(b)
    chunked: list[list[int]] = [[], []]
    rng = np.random.default_rng(1)
    sizes = []
    while session.active:
        active = session.active
        n = int(rng.integers(1, min(session.steps_ready(), 7) + 1))
        sizes.append(n)
        session.step(n)
        for b in active:
            chunked[b].extend(session.tokens_out[b, :n].tolist())
    session.close()
    assert chunked == alone
    assert max(sizes) > 1


def test_transcribe_batch_in_chunks_equals_live_stepping() -> None:
    from voxkit.asr.session import transcribe_batch

    model = tiny_model()
    waves = [chirp(s, seed=20 + i) for i, s in enumerate((1.4, 0.6, 2.2, 0.9, 1.7))]
    live = transcribe_batch(model, TOK, waves, delay=2, batch_size=2, chunk_steps=1)
    chunked = transcribe_batch(model, TOK, waves, delay=2, batch_size=2, chunk_steps=16)
    assert [t.text for t in chunked] == [t.text for t in live]
    assert [[(w.start, w.end) for w in t.words] for t in chunked] == [[(w.start, w.end) for w in t.words] for t in live]
    assert any(t.text for t in live)


def test_step_refuses_more_steps_than_the_audio_or_the_chunk() -> None:
    import pytest

    session = StreamingSession(tiny_model(), TOK, 1, chunk_steps=4)
    session.start(0, 2)
    session.push(0, chirp(0.3))  # 3 left-pad steps of silence (less the 40-sample look-ahead) + 0.3 s
    assert session.steps_ready() == 6
    with pytest.raises(ValueError, match="chunk_steps"):
        session.step(5)
    session.step(4)
    with pytest.raises(RuntimeError, match="240 ms"):
        session.step(3)
    session.close()


def test_words_written_in_the_flush_are_fitted_inside_the_audio() -> None:
    """The flush's silent steps let the last words out, at steps that can lie past the end of the
    audio (1.12 s and 1.52 s here, for 1 s of audio): they are pulled back inside it, in order,
    each reported once and with start < end, after the word already reported before finish()."""
    from voxkit.tokenizer import STREAMING_WORD_ID

    session = StreamingSession(tiny_model(), TOK, 1)
    session.start(0, 2)
    slot = session.slots[0]
    session.push(0, chirp(1.0))
    events = []

    def write(step: int, text: str) -> None:
        events.extend(session._on_token(0, slot, STREAMING_WORD_ID, step, slot.finishing))
        for k, token in enumerate(TOK.encode(text, bos=False), 1):
            events.extend(session._on_token(0, slot, token, step + k, slot.finishing))

    write(2, "hello")  # 0.16 s
    write(9, "world")  # 0.72 s: closes "hello" while audio is still arriving
    assert [(e.text, e.start, e.end) for e in events if e.kind == "word"] == [("hello", 0.16, pytest.approx(0.71))]
    session.finish(0)
    write(14, "again")  # 1.12 s, past the end
    write(19, "again")  # 1.52 s, past the end
    events.extend(session._end(0, slot))
    session.close()

    words = session.transcript(0).words
    duration = session.transcript(0).duration
    assert duration == 1.0
    assert [w.text for w in words] == ["hello", "world", "again", "again"]
    assert [(e.text, e.start, e.end) for e in events if e.kind == "word"] == [(w.text, w.start, w.end) for w in words]
    for before, after in pairwise(words):
        assert before.end <= after.start
    assert all(0.0 <= w.start < w.end <= duration for w in words)
    assert words[-1].end == duration
    assert words[0].start == 0.16  # a word that fits keeps its time
    assert all(0.0 <= e.start <= duration for e in events if e.kind == "delta")
    assert events[-1].kind == "final" and events[-1].text == "hello world again again"


def test_fit_tail_keeps_words_that_fit_and_pulls_late_ones_in() -> None:
    from voxkit.asr.session import fit_tail
    from voxkit.asr.transcript import Word

    # Inside the audio: each ends at its estimate or the next word's start, as before finish().
    inside = fit_tail([Word("a", 1.0, 1.3), Word("b", 1.2, 1.6)], 0.9, 2.0)
    assert [(w.start, w.end) for w in inside] == [(1.0, 1.2), (1.2, 1.6)]
    # Past the end: moved back, one 80 ms step each at least, ending with the audio.
    late = fit_tail([Word("a", 1.0, 1.5), Word("b", 2.1, 2.5), Word("c", 2.4, 2.8)], 0.9, 2.0)
    assert [w.text for w in late] == ["a", "b", "c"]
    assert late[-1].end == 2.0 and late[0].start == 1.0
    assert all(w.end - w.start >= 0.08 - 1e-9 for w in late)
    assert all(x.end <= y.start for x, y in pairwise(late))
    # No room for one step each after the last reported word: the space is shared equally.
    crowded = fit_tail([Word(t, 2.0, 2.3) for t in "abc"], 1.94, 2.0)
    assert [round(w.start, 6) for w in crowded] == [1.94, 1.96, 1.98] and crowded[-1].end == 2.0
    # No audio after the last reported word: kept (it may be real speech written late), in the last step.
    kept = fit_tail([Word("a", 2.1, 2.4), Word("b", 2.3, 2.6)], 2.0, 2.0)
    assert [(w.text, round(w.start, 6), w.end) for w in kept] == [("a", 1.84, 1.92), ("b", 1.92, 2.0)]
    assert fit_tail([], 0.0, 1.0) == []
