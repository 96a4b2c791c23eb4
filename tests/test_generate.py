"""Generation on a tiny random backbone: cached decode matches full forwards, batching is exact."""

from __future__ import annotations

import pytest
import torch

from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.generate import Generator
from voxkit.lm.sampling import SamplingConfig

VOCAB = 61
WINDOW = 6


def tiny_model(sliding_window: int | None = WINDOW, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    args = TransformerArgs(
        dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2,
        vocab_size=VOCAB, sliding_window=sliding_window, rope_theta=10000.0, max_seq_len=128,
    )
    model = Transformer(args).double().eval()
    with torch.no_grad():  # larger logits than the default init: clear argmax margins
        model.output.weight.mul_(8.0)
    return model


def reference_greedy(model: Transformer, prompt: list[int], n: int) -> list[int]:
    """Argmax loop over full offline forwards (no cache): the definition of greedy decoding."""
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([tokens]))  # [1, T, V]
            tokens.append(int(logits[0, -1].argmax()))
    return tokens[len(prompt) :]


PROMPTS = [[5, 17, 3, 9, 22], [40, 2], [7, 7, 1, 30, 12, 11, 50, 8, 19]]


@pytest.mark.parametrize("sliding_window", [WINDOW, None])
def test_greedy_matches_full_forward_loop(sliding_window: int | None) -> None:
    model = tiny_model(sliding_window)
    # prefill_chunk 3 with window 6 gives a ring of 8 slots: 25 new tokens wrap it several times.
    gen = Generator(model, prefill_chunk=3)
    if sliding_window is not None:
        assert gen.capacity_for(len(PROMPTS[0]), 25) == WINDOW + 3 - 1
    out = gen.generate([PROMPTS[0]], 25)
    assert out == [reference_greedy(model, PROMPTS[0], 25)]
    assert not any(isinstance(v, torch.Tensor) for v in vars(model).values())  # no cache left on the model


def test_batch_of_different_lengths_equals_one_by_one() -> None:
    model = tiny_model()
    gen = Generator(model, prefill_chunk=4)
    batched = gen.generate(PROMPTS, 20)
    single = [gen.generate([p], 20)[0] for p in PROMPTS]
    assert batched == single
    assert batched[2] == reference_greedy(model, PROMPTS[2], 20)


def test_stop_ids_end_a_stream_and_others_continue() -> None:
    model = tiny_model()
    gen = Generator(model, prefill_chunk=4)
    free = gen.generate(PROMPTS, 12)
    stop = free[1][4]  # the 5th token of stream 1 becomes a stop id
    stopped = Generator(model, prefill_chunk=4, stop_ids=[stop]).generate(PROMPTS, 12)
    for full, cut in zip(free, stopped, strict=True):
        expected = full[: full.index(stop)] if stop in full else full
        assert cut == expected
    assert stopped[1] == free[1][: free[1].index(stop)]
    assert len(stopped[1]) <= 4


def test_all_streams_stopped_ends_early() -> None:
    model = tiny_model()
    first = Generator(model).generate([PROMPTS[0]], 1)[0][0]
    gen = Generator(model, stop_ids=[first], sync_every=1)
    assert gen.generate([PROMPTS[0]], 50) == [[]]
    assert list(gen.stream([PROMPTS[0]], 50)) == [[None]]


def test_top_k_1_and_tiny_top_p_equal_greedy() -> None:
    model = tiny_model()
    greedy = Generator(model).generate(PROMPTS, 15)
    top1 = Generator(model, SamplingConfig(temperature=1.3, top_k=1)).generate(PROMPTS, 15, seed=3)
    nucleus = Generator(model, SamplingConfig(temperature=0.7, top_p=1e-6)).generate(PROMPTS, 15, seed=4)
    assert top1 == greedy
    assert nucleus == greedy


def test_seeded_sampling_is_reproducible_and_seed_dependent() -> None:
    model = tiny_model()
    gen = Generator(model, SamplingConfig(temperature=1.5, top_k=20, top_p=0.95))
    a = gen.generate(PROMPTS, 30, seed=123)
    b = gen.generate(PROMPTS, 30, seed=123)
    c = gen.generate(PROMPTS, 30, seed=124)
    assert a == b
    assert a != c
    plain = Generator(model, SamplingConfig(temperature=1.0))
    assert plain.generate(PROMPTS, 30, seed=5) == plain.generate(PROMPTS, 30, seed=5)


def test_top_k_restricts_samples_to_the_k_best() -> None:
    model = tiny_model()
    with torch.no_grad():
        logits = model(torch.tensor([PROMPTS[0]]))[0, -1]  # [V]
    allowed = set(logits.topk(3).indices.tolist())
    gen = Generator(model, SamplingConfig(temperature=5.0, top_k=3))
    firsts = {gen.generate([PROMPTS[0]], 1, seed=s)[0][0] for s in range(40)}
    assert firsts <= allowed
    assert len(firsts) > 1  # high temperature: more than the argmax shows up


def test_stream_yields_the_same_tokens_as_generate() -> None:
    model = tiny_model()
    stop = Generator(model).generate(PROMPTS, 6)[0][3]
    gen = Generator(model, SamplingConfig(temperature=1.0, top_p=0.9), stop_ids=[stop])
    expected = gen.generate(PROMPTS, 18, seed=9)
    collected: list[list[int]] = [[] for _ in PROMPTS]
    for step in gen.stream(PROMPTS, 18, seed=9):
        assert len(step) == len(PROMPTS)
        for b, token in enumerate(step):
            if token is not None:
                collected[b].append(token)
    assert collected == expected


def test_bad_arguments_raise() -> None:
    model = tiny_model()
    gen = Generator(model)
    with pytest.raises(ValueError):
        gen.generate([[]], 3)
    with pytest.raises(ValueError):
        gen.generate([[1]], 0)
    with pytest.raises(ValueError):
        gen.generate([[VOCAB]], 3)
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0.0)


def test_off_the_cpu_the_ring_takes_the_first_prefill_chunk_at_once() -> None:
    """A GPU step cannot see that a fresh ring has room (that would be a host sync), so a short
    run's ring still holds a window plus the first prefill chunk there; the CPU keeps the
    smallest ring."""
    model = tiny_model(WINDOW)
    gen = Generator(model, prefill_chunk=3)
    assert gen.capacity_for(5, 2) == 7  # CPU: prompt + new tokens
    on_meta = Generator(model.to("meta"), prefill_chunk=3)
    capacity = on_meta.capacity_for(5, 2)
    assert capacity == WINDOW + 3 - 1
    assert capacity - WINDOW + 1 >= 3  # Transformer.max_chunk: the first chunk goes in one call
    assert on_meta.capacity_for(2, 1) == WINDOW + 2 - 1  # a shorter prompt needs less
