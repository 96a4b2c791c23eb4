"""The flow head's sampler against the plain formulation: one full velocity evaluation per Euler step.

The sampler computes the condition token once per call and takes the time tokens of its schedule
(FlowHead.step_times) from its caller, once per generation, and reuses one input buffer across
steps. Those are speed choices only: the samples must be the ones the per-step formulation gives,
to the bit, guidance included.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from tts_helpers import tiny_tts_args
from voxkit.lm.norm import delay_embedding
from voxkit.tts.args import TTSArgs
from voxkit.tts.flow import TIME_SCALE, FlowHead
from voxkit.tts.generate import GenerationOptions, generate_frames
from voxkit.tts.model import TTSModel


def reference_velocity(head: FlowHead, x_t: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """x_t [N, A], t [N], h [N, C] -> [N, A]: the three tokens built from scratch, as the head is specified."""
    time = head.time_mlp(delay_embedding(t * TIME_SCALE, head.stack.args.dim).to(x_t.dtype))  # [N, d]
    tokens = torch.stack([head.input_proj(x_t), time, head.cond_proj(h)], dim=1)  # [N, 3, d]
    return head.output_proj(head.stack.forward_embeddings(tokens)[:, 0])  # [N, A]


@torch.no_grad()
def reference_sample(head: FlowHead, h: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float) -> torch.Tensor:
    """Euler with one velocity call per step; guidance runs both branches as one batch [h; 0] of 2N."""
    n = h.shape[0]
    guided = cfg != 1.0
    cond = torch.cat([h, torch.zeros_like(h)]) if guided else h  # [2N or N, C]
    x = noise  # [N, A]
    dt = 1.0 / steps
    times = torch.arange(steps, device=h.device, dtype=h.dtype) * dt  # [steps]
    for i in range(steps):
        t = times[i].expand(cond.shape[0])  # [2N or N]
        v = reference_velocity(head, torch.cat([x, x]) if guided else x, t, cond)  # [2N or N, A]
        if guided:
            v = cfg * v[:n] + (1.0 - cfg) * v[n:]  # [N, A]
        x = x + dt * v
    return x


def tiny_head(seed: int = 0) -> FlowHead:
    torch.manual_seed(seed)
    return FlowHead(tiny_tts_args().flow, acoustic_dim=4, cond_dim=8).eval()


def bundled_size_head(seed: int = 0) -> FlowHead:
    """The bundled model's flow head (dim 128, 36 values): matmuls big enough for row-count-dependent rounding."""
    torch.manual_seed(seed)
    args = TTSArgs.tiny(vocab_size=320)
    return FlowHead(args.flow, acoustic_dim=args.acoustic_dim, cond_dim=args.backbone.dim).eval()


def inputs(head: FlowHead, n: int, seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, head.cond_proj.in_features, generator=g).to(dtype)  # [N, C]
    noise = torch.randn(n, head.acoustic_dim, generator=g).to(dtype)  # [N, A]
    return h, noise


@pytest.mark.parametrize("make", [tiny_head, bundled_size_head], ids=["tiny", "bundled-size"])
@pytest.mark.parametrize("n", [1, 3])
def test_sample_is_bit_identical_to_one_velocity_call_per_step(make: object, n: int) -> None:
    head = make()  # type: ignore[operator]
    h, noise = inputs(head, n, seed=n)
    for steps in (1, 2, 5, 7, 16):
        for cfg in (1.0, 1.2, 2.0, 0.5):
            expected = reference_sample(head, h, noise, steps, cfg)
            for _ in range(2):  # the second call reads the cached time tokens
                got = head.sample(h, noise, steps=steps, cfg=cfg)
                assert torch.equal(got, expected), (steps, cfg)


def test_bfloat16_sampling_is_bit_identical() -> None:
    head = bundled_size_head().to(torch.bfloat16)
    h, noise = inputs(head, 2, seed=5, dtype=torch.bfloat16)
    for steps, cfg in ((7, 1.2), (4, 1.0), (3, 2.5)):
        got = head.sample(h, noise, steps=steps, cfg=cfg)
        assert got.dtype == torch.bfloat16
        assert torch.equal(got, reference_sample(head, h, noise, steps, cfg))


def test_noise_is_left_alone() -> None:
    head = tiny_head()
    h, noise = inputs(head, 2, seed=1)
    before = noise.clone()
    out = head.sample(h, noise, steps=3, cfg=1.5)
    assert torch.equal(noise, before)
    assert out.shape == noise.shape and out.data_ptr() != noise.data_ptr()


@pytest.mark.parametrize("cfg", [1.0, 1.2])
def test_time_tokens_given_once_equal_those_computed_per_call(cfg: float) -> None:
    """A generation computes the schedule's time tokens once and hands them to every frame's sample."""
    head = tiny_head()
    h, noise = inputs(head, 1, seed=2)
    rows = 1 if cfg == 1.0 else 2
    times = head.step_times(5, rows, h.dtype, noise.dtype, h.device)  # [5, rows, d]
    assert times.shape == (5, rows, head.stack.args.dim)
    given = head.sample(h, noise, steps=5, cfg=cfg, times=times)
    assert torch.equal(given, head.sample(h, noise, steps=5, cfg=cfg))
    assert torch.equal(given, reference_sample(head, h, noise, 5, cfg))


def test_heads_built_under_inference_mode_sample_alike() -> None:
    with torch.inference_mode():
        head = tiny_head()
        h, noise = inputs(head, 1, seed=3)
        for cfg in (1.0, 1.3):
            assert torch.equal(head.sample(h, noise, steps=4, cfg=cfg), reference_sample(head, h, noise, 4, cfg))


def test_training_loss_and_gradients_are_the_specified_ones() -> None:
    """The loss path still builds its tokens per call: the same loss and gradients as the formulation above."""
    head = tiny_head()
    x1 = torch.rand(16, 4) * 2 - 1  # [N, A]
    h = torch.randn(16, 8)  # [N, C]
    loss = head.loss(x1, h, condition_dropout=0.25, generator=torch.Generator().manual_seed(4))
    grads = torch.autograd.grad(loss, list(head.parameters()))

    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(x1.shape, generator=g)  # [N, A]
    t = torch.rand(16, generator=g)  # [N]
    keep = torch.rand(16, generator=g) >= 0.25  # [N]
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1  # [N, A]
    expected = F.mse_loss(reference_velocity(head, x_t, t, h * keep[:, None].float()), x1 - x0)
    expected_grads = torch.autograd.grad(expected, list(head.parameters()))
    assert torch.equal(loss, expected)
    assert all(torch.equal(a, b) for a, b in zip(grads, expected_grads, strict=True))


def test_generated_frames_match_the_per_step_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = TTSModel(tiny_tts_args()).eval()
    reference = torch.cat([torch.randint(0, 64, (10, 1)), torch.randint(0, 5, (10, 4))], dim=1)  # [10, 5]
    prompt = model.prompt(list(range(40, 70)), reference)
    options = GenerationOptions(max_frames=12, min_frames=12, cfg=1.2)

    def frames() -> list[torch.Tensor]:
        return list(generate_frames(model, prompt, options, torch.Generator().manual_seed(1)))

    got = frames()
    monkeypatch.setattr(FlowHead, "sample", lambda head, h, noise, steps, cfg, times=None: reference_sample(head, h, noise, steps, cfg))
    expected = frames()
    assert len(got) == len(expected) == 12
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
