"""Growing the decoder (twin layers, wider feed-forward) keeps the recogniser's outputs and trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asr_helpers import chirp, tiny_model
from voxkit.asr.args import RealtimeArgs
from voxkit.asr.features import LogMel
from voxkit.asr.grow import grow_checkpoint, grow_state
from voxkit.asr.model import RealtimeRecognizer
from voxkit.checkpoint import detect_layout, read_config
from voxkit.errors import CheckpointError


def _inputs(model: RealtimeRecognizer, steps: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    wav = chirp(steps * 0.08).unsqueeze(0)  # [1, T]
    mel = LogMel(model.args.n_mels)(wav)[..., : steps * model.mel_frames_per_step]  # [1, n_mels, 8 steps]
    tokens = torch.randint(0, model.args.decoder.vocab_size, (1, steps), generator=torch.Generator().manual_seed(1))  # [1, steps]
    return mel, tokens, torch.tensor([3.0])


def _grown(model: RealtimeRecognizer, twins: list[int], hidden: int | None) -> RealtimeRecognizer:
    params = model.args.to_params()
    state, grown_params = grow_state(model.state_dict(), params, twins, hidden)
    assert params == model.args.to_params()  # the input config is untouched
    grown = RealtimeRecognizer(RealtimeArgs.from_params(grown_params)).eval()
    grown.load_state_dict(state)
    return grown


@pytest.mark.parametrize(("twins", "hidden"), [([1], None), ([], 96), ([0, 1], 80)])
def test_grown_decoder_computes_the_same_logits(twins: list[int], hidden: int | None) -> None:
    model = tiny_model()
    grown = _grown(model, twins, hidden)
    assert grown.args.decoder.n_layers == model.args.decoder.n_layers + len(twins)
    assert grown.args.decoder.hidden_dim == (hidden or model.args.decoder.hidden_dim)
    mel, tokens, delay = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(grown(mel, tokens, delay), model(mel, tokens, delay), rtol=0, atol=1e-5)


def test_new_weights_receive_gradient() -> None:
    model = tiny_model()
    grown = _grown(model, [0], 96).train()
    mel, tokens, delay = _inputs(model)
    grown(mel, tokens, delay).logsumexp(-1).mean().backward()
    twin = grown.decoder.layers[1]
    assert twin.attention.wo.weight.grad.abs().sum() > 0  # zeroed output projections learn first
    assert twin.feed_forward.w2.weight.grad.abs().sum() > 0
    new_cols = grown.decoder.layers[0].feed_forward.w2.weight.grad[:, model.args.decoder.hidden_dim :]
    assert new_cols.abs().sum() > 0  # the new feed-forward units are active


def test_grow_checkpoint_folder_and_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny_model()
    src = tmp_path / "ckpt"
    src.mkdir()
    save_file(model.state_dict(), str(src / "model.safetensors"))
    (src / "config.json").write_text(json.dumps(model.args.to_params()))
    params = grow_checkpoint(src, tmp_path / "grown", twins=[1], ffn_hidden=96)
    assert (params["n_layers"], params["hidden_dim"]) == (3, 96)
    assert read_config(tmp_path / "grown", "training") == params and detect_layout(tmp_path / "grown") == "training"
    with pytest.raises(CheckpointError, match="narrow"):
        grow_checkpoint(src, tmp_path / "bad", ffn_hidden=32)
    with pytest.raises(CheckpointError, match="twins"):
        grow_checkpoint(src, tmp_path / "bad", twins=[5])
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        grow_checkpoint(tmp_path / "missing", tmp_path / "bad")


def test_twin_of_a_biased_layer_adds_nothing() -> None:
    from voxkit.asr.grow import add_twins

    state = {"decoder.layers.0.attention.wo.bias": torch.ones(4), "decoder.layers.0.attention.wq.bias": torch.ones(4)}
    grown = add_twins(state, 1, [0])
    assert grown["decoder.layers.1.attention.wo.bias"].abs().sum() == 0  # residual output silent
    assert torch.equal(grown["decoder.layers.1.attention.wq.bias"], torch.ones(4))


def test_encoder_delay_gains_start_silent_then_learn(tmp_path: Path) -> None:
    from voxkit.asr.checkpoint import load_recognizer, save_recognizer

    model = tiny_model()
    params = model.args.to_params()
    state, grown_params = grow_state(model.state_dict(), params, encoder_delay=True)
    grown = RealtimeRecognizer(RealtimeArgs.from_params(grown_params)).eval()
    grown.load_state_dict(state)
    assert grown.args.encoder.ada_rms_norm_t_cond and not model.args.encoder.ada_rms_norm_t_cond
    mel, tokens, delay = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(grown(mel, tokens, delay), model(mel, tokens, delay), rtol=0, atol=1e-6)
    grown.train()
    grown(mel, tokens, delay).logsumexp(-1).mean().backward()
    assert grown.encoder.transformer.layers[0].ada_rms_norm_t_cond[2].weight.grad.abs().sum() > 0
    # the published layout carries the conditioned encoder (params.json and weights)
    save_recognizer(grown, tmp_path / "m")
    loaded = load_recognizer(tmp_path / "m")
    assert loaded.args.encoder.ada_rms_norm_t_cond
    for key, value in grown.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match="already"):
        grow_state(state, grown_params, encoder_delay=True)
