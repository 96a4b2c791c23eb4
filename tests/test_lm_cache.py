"""Streaming (ring KV cache) decoding equals the offline full-sequence forward."""

from __future__ import annotations

import pytest
import torch

from voxkit.lm import Llama4ScalingArgs, MoeArgs, Transformer, TransformerArgs, YarnArgs

VOCAB = 97


def tiny(**overrides: object) -> TransformerArgs:
    base = dict(dim=48, n_layers=2, head_dim=12, hidden_dim=96, n_heads=4, n_kv_heads=2, vocab_size=VOCAB, rope_theta=1e4)
    base.update(overrides)
    return TransformerArgs(**base)  # type: ignore[arg-type]


VARIANTS = {
    "window": tiny(sliding_window=5),
    "window-per-layer": tiny(sliding_window=[4, 9]),
    "moe": tiny(sliding_window=6, moe=MoeArgs(num_experts=4, num_experts_per_tok=2)),
    "ministral3": tiny(
        sliding_window=None, max_seq_len=64, yarn=YarnArgs(factor=4, original_max_position_embeddings=8),
        llama_4_scaling=Llama4ScalingArgs(8, 0.1),
    ),
    "ada-biases": tiny(sliding_window=6, ada_rms_norm_t_cond=True, use_biases=True),
}


def _model(args: TransformerArgs) -> Transformer:
    model = Transformer(args).eval()
    with torch.no_grad():  # non-zero biases / Ada gains so those paths are exercised
        for p in model.parameters():
            if p.dim() == 1 and p.shape[0] == args.dim and p is not None:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _delay(args: TransformerArgs, batch: int) -> torch.Tensor | None:
    return torch.arange(batch).float() + 3 if args.ada_rms_norm_t_cond else None


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_incremental_decode_matches_full_forward(name: str) -> None:
    args = VARIANTS[name]
    model = _model(args)
    tokens = torch.randint(0, VOCAB, (2, 30))
    delay = _delay(args, 2)
    with torch.no_grad():
        full = model(tokens, num_delay_tokens=delay)  # [2, 30, V]
        # Tiny ring: the cache wraps several times over 30 steps.
        with model.streaming(2, capacity=(args.max_window or 40) + 1) as state:
            steps = [model(tokens[:, t : t + 1], state=state, num_delay_tokens=delay) for t in range(30)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["window", "moe", "ada-biases"])
def test_chunked_prefill_matches_one_shot(name: str) -> None:
    args = VARIANTS[name]
    model = _model(args)
    tokens = torch.randint(0, VOCAB, (2, 40))
    delay = _delay(args, 2)
    with torch.no_grad():
        full = model(tokens, num_delay_tokens=delay)
        # chunks larger than capacity - window + 1 are split internally
        with model.streaming(2, capacity=9) as state:
            parts, start = [], 0
            for size in (3, 1, 7, 13, 2, 14):
                parts.append(model(tokens[:, start : start + size], state=state, num_delay_tokens=delay))
                start += size
    assert start == 40
    assert (torch.cat(parts, dim=1) - full).abs().max().item() < 1e-5


def test_batched_prompts_of_different_lengths_match_one_by_one() -> None:
    model = _model(VARIANTS["window"])
    prompts = [torch.randint(0, VOCAB, (n,)) for n in (9, 4, 13)]
    follow = torch.randint(0, VOCAB, (3, 6))
    padded = torch.zeros(3, 13, dtype=torch.long)
    for b, p in enumerate(prompts):
        padded[b, : len(p)] = p
    lengths = torch.tensor([len(p) for p in prompts])
    with torch.no_grad():
        with model.streaming(3, capacity=24) as state:
            first = model(padded, state=state, lengths=lengths)  # [3, 13, V]
            nxt = torch.cat([model(follow[:, t : t + 1], state=state) for t in range(6)], dim=1)  # [3, 6, V]
        for b, p in enumerate(prompts):
            alone = model(torch.cat([p, follow[b]])[None])[0]  # [n + 6, V]
            assert (first[b, : len(p)] - alone[: len(p)]).abs().max().item() < 1e-5
            assert (nxt[b] - alone[len(p) :]).abs().max().item() < 1e-5


def test_reset_mask_restarts_one_stream_only() -> None:
    model = _model(VARIANTS["window"])
    a = torch.randint(0, VOCAB, (2, 12))
    b = torch.randint(0, VOCAB, (2, 8))
    with torch.no_grad():
        with model.streaming(2) as state:
            model(a, state=state)
            state.reset(torch.tensor([False, True]))
            out = model(b, state=state)
        stream0 = model(torch.cat([a[0], b[0]])[None])[0, 12:]
        stream1_fresh = model(b[1:2])[0]
    assert (out[0] - stream0).abs().max().item() < 1e-5
    assert (out[1] - stream1_fresh).abs().max().item() < 1e-5


def test_ada_delay_changes_output_and_batches_match_single() -> None:
    args = VARIANTS["ada-biases"]
    model = _model(args)
    tokens = torch.randint(0, VOCAB, (1, 10)).repeat(2, 1)
    with torch.no_grad():
        both = model(tokens, num_delay_tokens=torch.tensor([2.0, 9.0]))
        one = model(tokens[:1], num_delay_tokens=torch.tensor([9.0]))
    assert (both[1] - one[0]).abs().max().item() < 1e-5
    assert (both[0] - both[1]).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match="num_delay_tokens"):
        model(tokens)


def test_causality_by_gradients() -> None:
    model = _model(VARIANTS["window"])
    x = torch.randn(1, 16, 48, requires_grad=True)
    hidden = model.forward_embeddings(x)
    hidden[0, 7].sum().backward()
    grad = x.grad[0].abs().sum(-1)  # [16]
    assert torch.all(grad[8:] == 0)
    assert torch.all(grad[3:8] > 0)  # within the window of 5 ...
    # ... and through two layers the receptive field reaches 2 * (5 - 1) positions back
    assert torch.all(grad[:3] >= 0)


def test_attention_reads_only_the_written_part_of_the_ring() -> None:
    from voxkit.lm.cache import plan_step

    model = _model(VARIANTS["window"])
    tokens = torch.randint(0, VOCAB, (2, 40))
    with torch.no_grad():
        full = model(tokens)
        with model.streaming(2, capacity=32) as state:
            assert plan_step(state, 3).used == 3  # a dry plan: nothing written yet
            state.slot_pos.fill_(-1)
            out = [model(tokens[:, :12], state=state)]
            assert plan_step(state, 1).used == 13
            state.slot_pos[:, 12] = -1  # undo the dry plan's registration
            state.reset(torch.tensor([True, False]))  # stream 0 restarts at slot 0
            assert plan_step(state, 1).used == 13  # stream 1 still needs its 13 slots
            state.slot_pos[0, 0], state.slot_pos[1, 12] = -1, -1
            out += [model(tokens[:, 12 + t : 13 + t], state=state) for t in range(28)]  # stream 1 wraps the ring
            assert plan_step(state, 1).used == 32
    # stream 1 never restarted: equal to the offline forward all the way through the wrap
    assert (torch.cat(out, dim=1)[1] - full[1]).abs().max().item() < 1e-5


def test_ring_as_small_as_the_window_steps_wrapped_chunks_exactly() -> None:
    """A ring of exactly ``window`` slots, fed chunks of 2 after it wrapped, must not evict a key the
    chunk's first token still needs (it is split into single steps once the ring is full)."""
    torch.manual_seed(0)
    args = tiny(sliding_window=3, vocab_size=0, positions="alibi", rope_theta=None)
    model = Transformer(args).eval()
    x = torch.randn(1, 10, args.dim)
    full = model.forward_embeddings(x)
    state = model.init_state(1, capacity=3)
    steps = torch.cat([model.forward_embeddings(x[:, i : i + 2], state=state) for i in range(0, 10, 2)], 1)
    torch.testing.assert_close(steps, full)
