"""The streaming-ASR training task: batch layout, deterministic delays in worker processes, losses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from asr_helpers import chirp, tiny_args
from voxkit.asr.features import SAMPLES_PER_STEP
from voxkit.asr.model import RealtimeRecognizer
from voxkit.asr.task import AsrTask, AsrTaskConfig
from voxkit.tokenizer import BOS_ID, STREAMING_PAD_ID, STREAMING_WORD_ID, ByteTokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "echo", "fox"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight chirps of 1.5-3 s with three 'words' each (starts at 0.2 s, 0.7 s, 1.2 s)."""
    folder = tmp_path_factory.mktemp("asr_task")
    rows = []
    for i in range(8):
        seconds = 1.5 + 0.2 * i
        path = folder / f"u{i}.wav"
        sf.write(path, chirp(seconds, seed=i).numpy(), 16000)
        words = [{"word": WORDS[(i + k) % len(WORDS)], "start": 0.2 + 0.5 * k, "end": 0.6 + 0.5 * k} for k in range(3)]
        rows.append({"audio": path.name, "text": " ".join(w["word"] for w in words), "language": "en",
                     "duration": seconds, "words": words})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_task(manifest: Path, **options: object) -> AsrTask:
    model_args = tiny_args()
    cfg = AsrTaskConfig(train=[str(manifest)], max_seconds=8.0, augment=False, **options)  # type: ignore[arg-type]
    return AsrTask(cfg, model_args, ByteTokenizer())


def test_batches_are_the_same_with_or_without_worker_processes(manifest: Path) -> None:
    """Batches (and their random delays) are built in the loader's workers: which process builds
    a batch must not change it."""
    alone = list(make_task(manifest, num_workers=0, delay_sampling="log_uniform").train_batches(1, 0, 1))
    workers = list(make_task(manifest, num_workers=2, delay_sampling="log_uniform").train_batches(1, 0, 1))
    assert len(alone) == len(workers) > 1
    for a, b in zip(alone, workers, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a if k != "audio")
        # loudness normalisation sums in a different order with one thread (workers) or several
        torch.testing.assert_close(a["audio"], b["audio"], rtol=0, atol=1e-6)
    delays = torch.cat([b["delays"] for b in alone])
    assert delays.min() >= 1 and delays.max() <= 30 and len(set(delays.tolist())) > 1
    # another epoch draws other delays for the same items
    task = make_task(manifest, num_workers=0, delay_sampling="log_uniform")
    by_epoch = [{b["tokens"].shape[1]: b["delays"].tolist() for b in task.train_batches(e, 0, 1)} for e in (1, 2)]
    assert by_epoch[0] != by_epoch[1]


def test_batch_layout_follows_the_delayed_streams(manifest: Path) -> None:
    task = make_task(manifest)
    item = task.train_set[0]
    from voxkit.data.dataset import collate

    delay = 4
    batch = task.make_batch(collate([item]), [delay])
    left = task.args.n_left_pad_tokens
    tokens, weights, audio = batch["tokens"][0], batch["weights"][0], batch["audio"][0]
    assert tokens[0] == BOS_ID and (tokens[1 : 1 + left + delay] == STREAMING_PAD_ID).all()
    # nothing before the first generated token is trained; text targets weigh 1, idle ones pad_weight
    assert (weights[: left + delay] == 0).all() and weights[left + delay] > 0
    targets = tokens[1:]
    trained = weights > 0
    assert (weights[trained & (targets != STREAMING_PAD_ID)] == 1.0).all()
    assert (weights[trained & (targets == STREAMING_PAD_ID)] == task.cfg.pad_weight).all()
    # the first word (audio step floor(0.2 s / 80 ms) = 2) is written delay + 1 steps later
    first_word = int((tokens == STREAMING_WORD_ID).nonzero()[0])
    assert first_word == left + 2 + delay + 1
    # the audio sits after left_pad silent steps, as the streaming engine feeds it
    n = item["audio"].numel()
    assert (audio[: left * SAMPLES_PER_STEP] == 0).all()
    assert torch.equal(audio[left * SAMPLES_PER_STEP : left * SAMPLES_PER_STEP + n], item["audio"])
    assert "ctc_targets" not in batch


def test_losses_fall_when_overfitting_one_batch(manifest: Path) -> None:
    """Text CE plus byte CTC on the encoder: finite, and a few AdamW steps on one batch lower both."""
    torch.manual_seed(0)
    task = make_task(manifest, ctc_weight=0.5, token_dropout=0.3)
    model = RealtimeRecognizer(task.args)
    model.enable_ctc_head()
    batch = next(iter(task.train_batches(0, 0, 1)))
    assert batch["ctc_lengths"].sum() == batch["ctc_targets"].numel()
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, metrics = task.loss(model, batch)
        assert torch.isfinite(loss)
        if first is None:
            first = (loss.item(), metrics["ctc"].item(), metrics["text_ce"].item())
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()  # no token dropout in evaluation mode: the loss is deterministic
    with torch.no_grad():
        a, _ = task.loss(model, batch)
        b, metrics = task.loss(model, batch)
    assert float(a) == float(b)
    assert float(a) < 0.5 * first[0] and float(metrics["ctc"]) < first[1] and float(metrics["text_ce"]) < first[2]


def test_closing_the_mixture_ends_the_loader_worker_processes(manifest: Path) -> None:
    """Training ends by closing each task's running epoch: its DataLoader workers exit then, not
    at interpreter shutdown (where many of them could keep a finished run from exiting)."""
    import multiprocessing
    import time

    from voxkit.train.task import TaskMixture

    before = set(multiprocessing.active_children())
    mixture = TaskMixture({"asr": make_task(manifest, num_workers=2)}, {"asr": 1.0}, seed=0)
    mixture.next_batch("asr")  # mid-epoch: the workers are running
    assert len(set(multiprocessing.active_children()) - before) == 2
    mixture.close()
    deadline = time.monotonic() + 10
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(multiprocessing.active_children()) - before


def test_voxkit_train_runs_the_asr_task_from_a_recipe(manifest: Path, tmp_path: Path) -> None:
    """The recipe names the model and the task; the trainer finds both by name (entry points)."""
    from voxkit.cli.main import main as cli_main
    from voxkit.train.checkpointing import latest_checkpoint
    from voxkit.train.recipe import load_recipe
    from voxkit.train.registry import build_model, build_tasks

    layers = "dim = 32\nn_layers = 1\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 2\nhidden_dim = 64\nsliding_window = 16\n"
    path = tmp_path / "asr.toml"
    path.write_text(
        f'[model]\nname = "realtime_recognizer"\nn_left_pad_tokens = 2\nctc_head = true\n'
        f"[model.encoder]\n{layers}[model.decoder]\n{layers}vocab_size = {ByteTokenizer().vocab_size}\n"
        f'[data]\ntokenizer = "byte"\n[train]\nmax_steps = 1\nprogress = false\nout_dir = "{tmp_path / "run"}"\n'
        f'[tasks.asr]\ntrain = ["{manifest}"]\nmax_seconds = 8.0\naugment = false\nctc_weight = 0.5\n'
    )
    recipe = load_recipe(path)
    model = build_model(recipe.model)
    task = build_tasks(recipe, model)["asr"]
    assert isinstance(model, RealtimeRecognizer) and isinstance(task, AsrTask)
    assert task.args is model.args and task.eval_delay == model.args.default_delay_tokens and task.cfg.ctc_weight == 0.5
    assert cli_main(["train", str(path)]) == 0
    assert latest_checkpoint(tmp_path / "run").name == "step_00000001"


def test_specaugment_masks_are_drawn_with_the_batch_and_applied_in_training(manifest: Path) -> None:
    from voxkit.data.augment import Augment

    quiet = Augment(p_speed=0.0, p_pitch=0.0, p_room=0.0, p_noise=0.0, p_telephone=0.0, p_codec=0.0, gain_db=(0.0, 0.0),
                    p_specaugment=1.0, time_masks_per_second=1.0)
    task = AsrTask(AsrTaskConfig(train=[str(manifest)], max_seconds=8.0, augment=quiet), tiny_args(), ByteTokenizer())
    first, again = next(task.train_batches(1, 0, 1)), next(task.train_batches(1, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in ("freq_masks", "time_masks"))
    lengths = (first["weights"].shape[0], first["time_masks"].shape[1])
    assert first["freq_masks"].shape == (lengths[0], quiet.freq_masks, 2) and lengths[1] >= 1
    offset = task.args.n_left_pad_tokens * SAMPLES_PER_STEP // 160
    starts = first["time_masks"][..., 0][first["time_masks"][..., 1] > 0]
    assert (starts >= offset).all()  # masks fall on the speech, not on the silent left padding
    model = RealtimeRecognizer(task.args)
    plain = {k: v for k, v in first.items() if k not in ("freq_masks", "time_masks")}
    torch.manual_seed(0)
    masked_loss = task.loss(model.train(), first)[0]
    assert not torch.equal(masked_loss, task.loss(model.train(), plain)[0])
    assert torch.equal(task.loss(model.eval(), first)[0], task.loss(model.eval(), plain)[0])  # never at evaluation
    assert "freq_masks" not in next(make_task(manifest).train_batches(1, 0, 1))  # augment=False: no masks


def test_recipes_tune_augmentation_by_key_and_refuse_unknown_keys(manifest: Path, tmp_path: Path) -> None:
    from voxkit.data.augment import Augment
    from voxkit.errors import VoxkitError
    from voxkit.train.recipe import load_recipe
    from voxkit.train.registry import build_model, build_tasks

    layers = "dim = 32\nn_layers = 1\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 2\nhidden_dim = 64\nsliding_window = 16\n"
    path = tmp_path / "asr.toml"
    path.write_text(
        f'[model]\nname = "realtime_recognizer"\nn_left_pad_tokens = 2\n'
        f"[model.encoder]\n{layers}[model.decoder]\n{layers}vocab_size = {ByteTokenizer().vocab_size}\n"
        f'[data]\ntokenizer = "byte"\n[tasks.asr]\ntrain = ["{manifest}"]\n'
        f"[tasks.asr.augment]\np_room = 0.0\nsnr_db = [0, 20]\n"
    )
    recipe = load_recipe(path, ["tasks.asr.augment.p_noise=0.25", "tasks.asr.augment.noise_colours=['pink']"])
    task = build_tasks(recipe, build_model(recipe.model))["asr"]
    aug = task.train_set.augment
    assert isinstance(aug, Augment) and task.cfg.augment is aug
    assert (aug.p_room, aug.snr_db, aug.p_noise, aug.noise_colours) == (0.0, (0.0, 20.0), 0.25, ("pink",))
    assert aug.p_speed == Augment().p_speed  # untouched keys keep their defaults
    with pytest.raises(VoxkitError, match="tasks.asr.augment.*p_nosie"):
        load_recipe(path, ["tasks.asr.augment.p_nosie=0.2"])
    with pytest.raises(VoxkitError, match="p_noise"):
        load_recipe(path, ["tasks.asr.augment.p_noise=2"])


def test_rooms_without_their_extra_stop_the_task_build_with_one_line(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from voxkit.data.augment import Augment
    from voxkit.errors import VoxkitError

    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)  # as if not installed
    with pytest.raises(VoxkitError, match="pip install pyroomacoustics"):
        AsrTask(AsrTaskConfig(train=[str(manifest)], augment=Augment(p_room=0.3)), tiny_args(), ByteTokenizer())
    AsrTask(AsrTaskConfig(train=[str(manifest)], augment=Augment(p_room=0.0)), tiny_args(), ByteTokenizer())  # rooms off: builds
