"""16-bit weight storage for inference gives exactly the float32 model's outputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from asr_helpers import chirp, tiny_model
from test_asr_streaming import run_stream
from voxkit.asr.features import LogMel
from voxkit.asr.model import RealtimeRecognizer
from voxkit.lm.cache import KVState
from voxkit.ops.stored_weights import StoredEmbedding, StoredLinear, keep_16bit_weights


def rounded_model(storage: torch.dtype) -> RealtimeRecognizer:
    """A tiny float32 recogniser whose parameters all hold ``storage`` values (as after a 16-bit export)."""
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(storage).float())
    return model


def count(model: nn.Module, kinds: tuple[type, ...]) -> int:
    return sum(isinstance(m, kinds) for m in model.modules())


def test_float16_storage_changes_no_output_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The widening reference (the C kernel of one-thread steps sums in another order: tested in
    # test_ops_linear16.py and test_lm_fused_step.py).
    monkeypatch.setenv("VOXKIT_KERNELS", "off")
    model = rounded_model(torch.float16)
    reference = copy.deepcopy(model)
    linears = count(model, (nn.Linear, nn.Embedding))
    assert keep_16bit_weights(model) == linears > 10
    assert count(model, (StoredLinear, StoredEmbedding)) == linears
    assert model.decoder.tok_embeddings.weight.dtype == torch.float16

    wav = chirp(1.5)
    mel = LogMel()(wav[None])[..., :144]  # [1, 128, 144]: 18 steps
    tokens = torch.randint(0, 259, (1, 18))
    delay = torch.tensor([4.0])
    with torch.no_grad():
        assert torch.equal(model(mel, tokens, delay), reference(mel, tokens, delay))

    stored = run_stream(model, wav, delay=4)[0]
    assert stored == run_stream(reference, wav, delay=4)[0]
    state = model.init_state(1)
    caches = [*state.encoder.transformer.kv, *state.decoder.kv]
    assert caches and all(isinstance(c, KVState) and c.k.dtype == torch.float32 for c in caches)  # caches stay float32


def test_bfloat16_values_use_bfloat16_storage() -> None:
    model = rounded_model(torch.bfloat16)
    w1 = model.decoder.layers[0].feed_forward.w1
    with torch.no_grad():
        w1.weight[0, 0] = torch.tensor(1e-9).to(torch.bfloat16).float()  # below float16's range
    reference = copy.deepcopy(model)
    assert keep_16bit_weights(model) == count(reference, (nn.Linear, nn.Embedding))
    assert model.decoder.layers[0].feed_forward.w1.weight.dtype == torch.bfloat16
    wav = chirp(1.0)
    assert run_stream(model, wav, delay=2)[0] == run_stream(reference, wav, delay=2)[0]


def test_float32_weights_are_left_alone() -> None:
    model = tiny_model()  # random float32 values: no 16-bit type holds them exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert keep_16bit_weights(model) == 0
    assert count(model, (StoredLinear, StoredEmbedding)) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_storage_halves_the_weight_bytes() -> None:
    model = rounded_model(torch.float16)

    def weight_bytes() -> int:
        return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2)

    before = weight_bytes()
    keep_16bit_weights(model)
    assert weight_bytes() == before // 2
