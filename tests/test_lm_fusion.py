"""Inference-time fusion of q/k/v and w1/w3, and the per-session Ada-RMSNorm gains."""

from __future__ import annotations

import copy

import torch

from asr_helpers import chirp, tiny_model
from test_asr_streaming import TOK, run_stream
from test_stored_weights import rounded_model
from voxkit.asr.session import StreamingSession
from voxkit.lm.fusion import fuse_projections
from voxkit.lm.transformer import Transformer
from voxkit.ops.stored_weights import keep_16bit_weights


def inputs(steps: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    mel = torch.randn(2, 128, 8 * steps)  # [B, n_mels, 8 T]
    tokens = torch.randint(0, 259, (2, steps))  # [B, T]
    return mel, tokens, torch.tensor([3.0, 7.0])


def test_fused_model_gives_the_same_outputs_and_keys() -> None:
    model = tiny_model()
    reference = copy.deepcopy(model)
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    assert fuse_projections(model) == 4 * 2  # attention + feed-forward in 2 encoder + 2 decoder layers
    state = model.state_dict()
    assert state.keys() == keys.keys() and all(torch.equal(state[k], keys[k]) for k in keys)
    attention = model.decoder.layers[0].attention
    assert attention.wq.weight.data_ptr() == attention.wqkv.weight.data_ptr()  # the views are the storage

    mel, tokens, delay = inputs()
    with torch.no_grad():
        fused, plain = model(mel, tokens, delay), reference(mel, tokens, delay)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    wav = chirp(1.5)
    assert run_stream(model, wav, delay=4)[0] == run_stream(reference, wav, delay=4)[0]


def test_fusion_with_16bit_storage_and_biases() -> None:
    model = rounded_model(torch.float16)
    reference = copy.deepcopy(model)
    keep_16bit_weights(model)
    fuse_projections(model)
    encoder_attention = model.encoder.transformer.layers[0].attention
    assert encoder_attention.wqkv.weight.dtype == torch.float16
    assert encoder_attention.wqkv.bias is not None  # wq and wv carry biases, wk none (zeros in the stack)
    mel, tokens, delay = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(mel, tokens, delay), reference(mel, tokens, delay), rtol=1e-5, atol=1e-5)


def test_training_ignores_the_fusion_and_updates_reach_it() -> None:
    model = tiny_model()
    fuse_projections(model)
    mel, tokens, delay = inputs(4)
    model(mel, tokens, delay).square().mean().backward()  # gradients on: the separate products
    wq = model.decoder.layers[1].attention.wq.weight
    assert wq.grad is not None and wq.grad.abs().sum() > 0
    with torch.no_grad():
        wq.add_(0.5)  # an in-place update (as an optimizer makes) lands in the fused storage too
        reference = copy.deepcopy(model)
        for module in reference.modules():
            if hasattr(module, "wqkv"):
                module.wqkv = None
            if hasattr(module, "w13"):
                module.w13 = None
        torch.testing.assert_close(model(mel, tokens, delay), reference(mel, tokens, delay), rtol=1e-5, atol=1e-5)


def test_moved_weights_fall_back_to_separate_products() -> None:
    model = tiny_model()
    fuse_projections(model)
    attention = model.decoder.layers[0].attention
    attention.wq.weight = torch.nn.Parameter(attention.wq.weight.detach() + 1.0)  # no longer a view of the stack
    x = torch.randn(1, 3, 32)
    assert not attention.wqkv.usable(x)


def test_delay_gains_are_computed_once_per_session_and_follow_a_restart() -> None:
    model = tiny_model()
    calls = []
    original = Transformer.delay_gains

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        out = original(self, *args, **kwargs)
        if self is model.decoder:
            calls.append(out)
        return out

    wav = chirp(1.0)
    Transformer.delay_gains = counting
    try:
        tokens_a, _ = run_stream(model, wav, delay=2)
    finally:
        Transformer.delay_gains = original
    assert len(calls) > 20 and all(c is calls[0] for c in calls)  # one computation for the whole stream
    # restarting the slot with another delay inside the same session gives that delay's tokens
    session = StreamingSession(model, TOK, 1)
    session.start(0, 2)
    session.push(0, wav[:16000])
    for _ in range(5):
        session.step()
    session.start(0, 9)
    session.push(0, wav)
    session.finish(0)
    restarted = []
    while session.active:
        session.step()
        restarted.append(int(session.prev[0]))
    session.close()
    assert restarted == run_stream(model, wav, delay=9)[0] != tokens_a


def test_a_fused_model_compiles_with_fullgraph() -> None:
    """A compiled decode step (Generator(compile=True)) runs the fused products; the storage check,
    a pointer comparison, would break the graph."""
    model = tiny_model()
    fuse_projections(model)
    block = model.decoder.layers[0]
    x = torch.randn(2, 3, block.attention.wq.weight.shape[1])
    with torch.no_grad():
        compiled = torch.compile(block.feed_forward, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), block.feed_forward(x))
