"""The recogniser task's options for a pretrained start: distillation, per-prefix learning rates, chained streams."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from asr_helpers import chirp, tiny_args
from test_asr_whisper import TINY, ct2_bytes, fake_whisper
from voxkit.asr.model import RealtimeRecognizer
from voxkit.asr.task import AsrTask, AsrTaskConfig
from voxkit.asr.whisper import whisper_encoder_state
from voxkit.config import ConfigError
from voxkit.data.chain import Chain, ChainedDataset
from voxkit.errors import VoxkitError
from voxkit.tokenizer import ByteTokenizer
from voxkit.train.optimizers import build_optimizers
from voxkit.train.recipe import OptimConfig


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six chirps of 1.5-2.5 s with two 'words' each."""
    folder = tmp_path_factory.mktemp("asr_distill")
    rows = []
    for i in range(6):
        seconds = 1.5 + 0.2 * i
        sf.write(folder / f"u{i}.wav", chirp(seconds, seed=i).numpy(), 16000)
        words = [{"word": w, "start": 0.2 + 0.6 * k, "end": 0.7 + 0.6 * k} for k, w in enumerate(("alpha", "beta"))]
        rows.append({"audio": f"u{i}.wav", "text": "alpha beta", "language": "en", "duration": seconds, "words": words})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("whisper")
    (folder / "model.bin").write_bytes(ct2_bytes(fake_whisper()))
    return folder


def whisper_shaped_args():  # noqa: ANN201 - RealtimeArgs
    """A tiny recogniser whose encoder has the fake Whisper's shape (LayerNorm, GELU, 80 mels)."""
    args = tiny_args(n_mels=80)
    enc = dataclasses.replace(args.encoder, dim=TINY.dim, n_layers=TINY.n_layers, n_heads=TINY.n_heads, n_kv_heads=TINY.n_heads,
                              head_dim=TINY.dim // TINY.n_heads, hidden_dim=TINY.hidden_dim, norm="layer", mlp="gelu")
    return dataclasses.replace(args, encoder=enc)


def make_task(manifest: Path, args=None, **options: object) -> AsrTask:  # noqa: ANN001
    cfg = AsrTaskConfig(train=[str(manifest)], max_seconds=8.0, augment=False, **options)  # type: ignore[arg-type]
    return AsrTask(cfg, args or tiny_args(), ByteTokenizer())


def test_distillation_trains_the_encoder_towards_the_frozen_teacher(manifest: Path, whisper_dir: Path) -> None:
    torch.manual_seed(0)
    args = whisper_shaped_args()
    task = make_task(manifest, args, teacher=str(whisper_dir), distill_weight=1.0)
    model = RealtimeRecognizer(args)
    batch = next(iter(task.train_batches(0, 0, 1)))
    loss, metrics = task.loss(model, batch)
    first = float(metrics["distill"])
    assert torch.isfinite(loss) and first > 0
    loss.backward()
    assert model.encoder.transformer.layers[0].attention.wq.weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in task.teacher.parameters())
    # starting from the teacher's own weights (causal and rotary instead of offline and absolute)
    # is closer to the teacher than a random encoder, and a few steps on the distillation loss alone
    # bring the causal encoder closer still
    model.encoder.load_state_dict(whisper_encoder_state(fake_whisper()))
    task_only = make_task(manifest, args, teacher=str(whisper_dir), distill_weight=1.0)
    _, m0 = task_only.loss(model, batch)
    assert float(m0["distill"]) < first
    optim = torch.optim.AdamW(model.encoder.parameters(), lr=3e-3)
    for _ in range(15):
        frames = model.encode_frames(task_only.features(batch["audio"]), batch["delays"])
        distill = task_only._distill(task_only.features(batch["audio"]), frames)
        optim.zero_grad()
        distill.backward()
        optim.step()
    _, m1 = task_only.loss(model, batch)
    assert float(m1["distill"]) < 0.7 * float(m0["distill"])
    # evaluation mode computes no distillation (nothing to learn there)
    model.eval()
    with torch.no_grad():
        _, m2 = task_only.loss(model, batch)
    assert "distill" not in m2


def test_a_teacher_of_another_width_or_a_weight_without_teacher_is_refused(manifest: Path, whisper_dir: Path) -> None:
    with pytest.raises(VoxkitError, match="do not match"):
        make_task(manifest, tiny_args(n_mels=128), teacher=str(whisper_dir), distill_weight=1.0)
    with pytest.raises(ValueError, match="needs a teacher"):
        AsrTaskConfig(train=["x"], distill_weight=0.5)


def test_lr_scale_gives_prefixes_their_own_rate_and_refuses_unknown_ones(manifest: Path) -> None:
    args = tiny_args()
    model = RealtimeRecognizer(args)
    task = make_task(manifest, args, lr_scale={"encoder.": 0.25, "decoder.": 0.5})
    optims = build_optimizers(model, {"asr": task}, OptimConfig(lr=1e-3), torch.device("cpu"))
    scale = {id(p): g["lr_scale"] for g in optims["main"].param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert {scale[id(p)] for n, p in named.items() if n.startswith("encoder.")} == {0.25}
    assert {scale[id(p)] for n, p in named.items() if n.startswith("decoder.")} == {0.5}
    assert {scale[id(p)] for n, p in named.items() if n.startswith("adapter.")} == {1.0}
    assert len(scale) == len(named)  # every parameter trained, once
    with pytest.raises(VoxkitError, match="no parameter name starts with 'encoder_'"):
        build_optimizers(model, {"asr": make_task(manifest, args, lr_scale={"encoder_": 0.1})}, OptimConfig(), torch.device("cpu"))


def test_a_chain_table_turns_training_items_into_long_streams(manifest: Path) -> None:
    task = make_task(manifest, chain=Chain(p=1.0, seconds=(4.0, 7.0)))
    assert isinstance(task.train_set, ChainedDataset)
    batches = list(task.train_batches(0, 0, 1))
    longest = max(b["audio"].shape[1] for b in batches) / 16000
    assert longest >= 4.0  # longer than any single utterance (2.5 s)
    assert sum(b["tokens"].shape[0] for b in batches) < 6  # fewer items than rows: rows were joined


def test_recipes_spell_the_new_keys_strictly(manifest: Path) -> None:
    from voxkit.config import strict_from_dict

    cfg = strict_from_dict(AsrTaskConfig, {"train": [str(manifest)], "chain": {"p": 0.3, "seconds": [10, 30]},
                                           "lr_scale": {"encoder.": 0.3}})
    assert cfg.chain == Chain(p=0.3, seconds=(10.0, 30.0)) and cfg.lr_scale == {"encoder.": 0.3}
    with pytest.raises(ConfigError, match="did you mean 'seconds'"):
        strict_from_dict(AsrTaskConfig, {"train": [str(manifest)], "chain": {"second": [10, 30]}})
    with pytest.raises(ConfigError, match="lr_scale"):
        strict_from_dict(AsrTaskConfig, {"train": [str(manifest)], "lr_scale": {"encoder.": -1}})


def test_a_frozen_encoder_gets_no_gradient_stays_out_of_the_optimizer_and_refuses_distillation(
    manifest: Path, whisper_dir: Path
) -> None:
    from voxkit.asr.task import RecognizerRecipe, build_asr_task, build_recognizer

    args = tiny_args()
    recipe = RecognizerRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(args)}, freeze_encoder=True)
    torch.manual_seed(0)
    model = build_recognizer(recipe)
    # a recipe's lr_scale may still name the frozen part (it names parameters: no typo to report)
    cfg = AsrTaskConfig(train=[str(manifest)], max_seconds=8.0, augment=False, lr_scale={"encoder.": 0.3, "decoder.": 0.5})
    task = build_asr_task(cfg, model, ByteTokenizer())
    optims = build_optimizers(model, {"asr": task}, OptimConfig(lr=1e-2, warmup_steps=0), torch.device("cpu"))
    in_optim = {id(p) for g in optims["main"].param_groups for p in g["params"]}
    assert not any(id(p) in in_optim for p in model.encoder.parameters())
    assert all(id(p) in in_optim for n, p in model.named_parameters() if not n.startswith("encoder."))
    encoder = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    batch = next(iter(task.train_batches(0, 0, 1)))
    loss, _ = task.loss(model, batch)
    loss.backward()
    optims["main"].step()
    assert all(torch.equal(v, encoder[k]) for k, v in model.encoder.state_dict().items())
    assert any(not torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())
    assert model.encode_frames(batch["audio"].new_zeros(1, args.n_mels, 8), torch.tensor([2])).grad_fn is None
    wargs = whisper_shaped_args()
    frozen = build_recognizer(RecognizerRecipe(**{f.name: getattr(wargs, f.name) for f in dataclasses.fields(wargs)},
                                               freeze_encoder=True))
    cfg = AsrTaskConfig(train=[str(manifest)], augment=False, teacher=str(whisper_dir), distill_weight=1.0)
    with pytest.raises(VoxkitError, match="freeze_encoder"):
        build_asr_task(cfg, frozen, ByteTokenizer())


def test_the_recipes_languages_reach_the_exported_params(tmp_path: Path) -> None:
    from voxkit.asr.bundle import load_bundle
    from voxkit.asr.checkpoint import RECOGNIZER_MODEL
    from voxkit.asr.task import RecognizerRecipe, build_recognizer
    from voxkit.cli.main import main
    from voxkit.cli.transcribe import model_languages
    from voxkit.train.checkpointing import save_checkpoint

    args = tiny_args()
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
    model = build_recognizer(RecognizerRecipe(**fields, languages=["en", "fr"]))
    assert "languages" not in args.decoder.extra  # the recipe's table is not changed
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "params.json").write_text(json.dumps({"tokenizer": "byte"}))
    recipe = {"model": {"name": RECOGNIZER_MODEL}, "data": {"tokenizer": str(tok)}, "train": {"out_dir": "runs/x"}}
    ckpt = save_checkpoint(tmp_path / "run", 3, model, {"optimizer": {}}, recipe)
    out = tmp_path / "exported"
    assert main(["export", "asr", str(ckpt), "--out", str(out)]) == 0
    assert json.loads((out / "params.json").read_text())["languages"] == ["en", "fr"]
    assert model_languages(load_bundle(out).model) == ("en", "fr")  # what `voxkit transcribe --language` checks
    with pytest.raises(ValueError, match="two-letter"):
        RecognizerRecipe(**fields, languages=["english"])
