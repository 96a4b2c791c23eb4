"""The text decode step compiles as ONE graph (torch.compile fullgraph) and gives the eager tokens."""

from __future__ import annotations

import pytest
import torch

from test_generate import PROMPTS, tiny_model
from voxkit.lm.generate import Generator


@pytest.mark.slow
@pytest.mark.parametrize("sliding_window", [6, None])
def test_compiled_decode_step_gives_the_eager_tokens(sliding_window: int | None) -> None:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = tiny_model(sliding_window).float()
    eager = Generator(model, prefill_chunk=3).generate(PROMPTS, 20)
    # fullgraph=True raises on any graph break; the ring (8 slots with the window) wraps twice.
    compiled = Generator(model, prefill_chunk=3, compile=True)
    assert compiled.generate(PROMPTS, 20) == eager
    # One graph, compiled once: later steps (other positions, other slots) reuse it.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("sliding_window", [6, None])
def test_compiled_decode_step_on_cuda(sliding_window: int | None) -> None:
    """On a GPU the static-shape step reads the whole ring (no host sync) and still gives the eager tokens."""
    torch._dynamo.reset()
    model = tiny_model(sliding_window).float().cuda()
    eager = Generator(model, prefill_chunk=3).generate(PROMPTS, 20)
    assert eager == [Generator(tiny_model(sliding_window).float(), prefill_chunk=3).generate([p], 20)[0] for p in PROMPTS]
    assert Generator(model, prefill_chunk=3, compile=True).generate(PROMPTS, 20) == eager
