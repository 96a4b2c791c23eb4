"""The trainer on toy tasks: learning, accumulation, checkpoints, resume, CLI, DDP (several optimizers and
shared models: test_train_optimizers.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ports import free_port
from voxkit.cli.main import main as cli_main
from voxkit.errors import CheckpointError, VoxkitError
from voxkit.lm import Transformer, TransformerArgs
from voxkit.train import checkpointing
from voxkit.train.checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from voxkit.train.optimizers import build_optimizer, lr_factor
from voxkit.train.recipe import Recipe
from voxkit.train.registry import ModelSpec, TaskSpec, register_model, register_task
from voxkit.train.stop import StopOnSignal
from voxkit.train.task import Task, TaskMixture, move_to
from voxkit.train.trainer import Trainer

VOCAB = 20
PATTERN = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4])  # period 20


def tiny_model() -> Transformer:
    return Transformer(TransformerArgs(dim=32, n_layers=1, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=VOCAB))


class ToyLM:
    """Next-token prediction on windows of a repeating sequence; windows drawn per (epoch, rank)."""

    def __init__(
        self, name: str = "toy", batch_size: int = 4, seq_len: int = 12, batches_per_epoch: int = 3, shift: int = 0, mask_p: float = 0.0
    ) -> None:
        self.name = name
        self.batch_size, self.seq_len, self.batches_per_epoch = batch_size, seq_len, batches_per_epoch
        self.stream = PATTERN.roll(shift).repeat(4)
        self.mask_p = mask_p  # > 0: randomly ignore targets with the global RNG (tests RNG restore)
        self.seen: list[tuple[int, int]] = []

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(1000 * epoch + 17 * rank + 1)
        for _ in range(self.batches_per_epoch):
            self.seen.append((epoch, rank))
            starts = torch.randint(0, len(PATTERN), (self.batch_size,), generator=g)
            yield torch.stack([self.stream[s : s + self.seq_len + 1] for s in starts.tolist()])

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch[:, :-1])  # [B, T, V]
        targets = batch[:, 1:].clone()
        if self.mask_p:
            targets[torch.rand(targets.shape, device=targets.device) < self.mask_p] = -100
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        acc = (logits.argmax(-1) == batch[:, 1:]).float().mean()
        return loss, {"acc": acc}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        batch = self.stream[: self.seq_len + 1][None]
        return {"loss": float(F.cross_entropy(model(batch[:, :-1])[0], batch[0, 1:]))}


def make_recipe(out_dir: Path, **train: object) -> Recipe:
    recipe = Recipe()
    recipe.optim.lr = 1e-2
    recipe.optim.warmup_steps = 2
    recipe.train.out_dir = str(out_dir)
    recipe.train.log_every = 1
    recipe.train.progress = False
    for key, value in train.items():
        setattr(recipe.train, key, value)
    return recipe


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def read_scalars(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "scalars.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- learning


def test_toy_task_satisfies_protocol_and_move_to() -> None:
    assert isinstance(ToyLM(), Task)
    batch = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.zeros(1), 3)], "c": "x"}
    moved = move_to(batch, "cpu")
    assert moved["c"] == "x" and moved["b"][1][1] == 3 and isinstance(moved["b"][1], tuple)


def test_loss_decreases_and_scalars_are_logged(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path, max_steps=40, log_every=5, save_every=0)
    recipe.optim.schedule = "constant"
    scalars = Trainer(recipe, tiny_model(), {"toy": ToyLM()}, {"toy": 1.0}).fit()
    rows = read_scalars(tmp_path)
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert train_rows[-1]["train/loss"] < 0.3 * train_rows[0]["train/loss"]
    assert {"train/lr", "train/grad_norm", "train/toy/loss", "train/toy/acc", "train/step_s", "train/data_wait_s"} <= set(train_rows[0])
    assert scalars["eval/toy/loss"] < 1.0  # the final evaluation ran and the pattern was learnt
    assert json.loads((tmp_path / "recipe.json").read_text())["train"]["max_steps"] == 40
    assert latest_checkpoint(tmp_path).name == "step_00000040"  # final checkpoint


def test_fit_closes_the_running_epochs(tmp_path: Path) -> None:
    """A finished fit leaves no epoch iterator suspended (a real task's loader workers exit with it)."""

    class Tracked(ToyLM):
        closed = 0

        def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
            try:
                yield from super().train_batches(epoch, rank, world_size)
            finally:
                Tracked.closed += 1

    task = Tracked(batches_per_epoch=100)
    Trainer(make_recipe(tmp_path, max_steps=3, save_every=0), tiny_model(), {"toy": task}, {"toy": 1.0}).fit()
    assert Tracked.closed == 1


def test_lr_schedule_warmup_and_decay() -> None:
    optim = Recipe().optim
    optim.warmup_steps, optim.min_lr_ratio = 4, 0.1
    assert [lr_factor(s, optim, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(20, optim, 20) == pytest.approx(0.1)
    optim.schedule = "linear"
    assert lr_factor(12, optim, 20) == pytest.approx(0.55)
    optim.schedule = "constant"
    assert lr_factor(19, optim, 20) == 1.0


def test_grad_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = tiny_model()
    twin = copy.deepcopy(model)
    before = params_of(model)
    big = ToyLM(batch_size=8, batches_per_epoch=1)
    halves = ToyLM(batch_size=8, batches_per_epoch=1)
    halves.train_batches = lambda e, r, w: iter(next(big.train_batches(e, r, w)).chunk(2))  # type: ignore[method-assign]
    for out, m, task, accum in (("big", model, big, 1), ("halves", twin, halves, 2)):
        recipe = make_recipe(tmp_path / out, max_steps=1, grad_accum=accum)
        recipe.optim.warmup_steps = 0
        Trainer(recipe, m, {"toy": task}, {"toy": 1.0}).fit()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(model.output.weight, before["output.weight"])  # the step did change the weights


def test_no_weight_decay_on_norms_biases_embeddings() -> None:
    model = tiny_model()
    opt = build_optimizer(model, Recipe().optim, torch.device("cpu"))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(model.tok_embeddings.weight) not in decayed and id(model.norm.weight) not in decayed
    assert id(model.output.weight) in decayed and opt.param_groups[1]["weight_decay"] == 0.0


# ---------------------------------------------------------------------------- mixture


def test_mixture_draws_by_weight_deterministically() -> None:
    tasks = {"a": ToyLM("a"), "b": ToyLM("b")}
    m1 = TaskMixture(tasks, {"a": 3.0, "b": 1.0}, seed=5)
    m2 = TaskMixture(dict(reversed(tasks.items())), {"b": 1.0, "a": 3.0}, seed=5)
    draws = m1.draw(4000)
    assert draws == m2.draw(4000)  # insertion order of the dicts does not matter
    assert Counter(draws)["a"] / 4000 == pytest.approx(0.75, abs=0.03)
    assert draws != TaskMixture(tasks, {"a": 3.0, "b": 1.0}, seed=6).draw(4000)
    assert set(TaskMixture(tasks, {"a": 1.0, "b": 0.0}, seed=0).draw(100)) == {"a"}
    # state round trip: a restored mixture continues with the same draws and the same batches
    for _ in range(4):
        m1.next_batch("a")  # 3 per epoch: now in epoch 1, one consumed
    state = m1.state_dict()
    m3 = TaskMixture({"a": ToyLM("a"), "b": ToyLM("b")}, {"a": 3.0, "b": 1.0}, seed=0)
    m3.load_state_dict(state)
    assert m3.epoch["a"] == 1 and m3.consumed["a"] == 1
    assert m1.draw(50) == m3.draw(50)
    for _ in range(5):
        assert torch.equal(m1.next_batch("a"), m3.next_batch("a"))


# ---------------------------------------------------------------------------- checkpoints and resume


class Exportable(Transformer):
    def export_config(self) -> dict:
        return self.args.to_dict()


def test_checkpoint_is_atomic_safe_and_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = Exportable(tiny_model().args)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, {"x": torch.ones(2), "note": "ok"}, {"a": 1}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    last = latest_checkpoint(tmp_path)
    assert {p.name for p in last.iterdir()} == {"model.safetensors", "train_state.pt", "config.json", "recipe.json"}
    assert json.loads((last / "config.json").read_text())["dim"] == 32
    assert torch.load(last / "train_state.pt", weights_only=True)["step"] == 3

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpointing.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 4, model, {}, keep_last=2)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == last  # the crash left the previous checkpoint the newest
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002", "step_00000003"]

    other = Exportable(tiny_model().args)
    assert load_checkpoint(tmp_path, other)["step"] == 3
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError):
        smaller = TransformerArgs(dim=16, n_layers=1, head_dim=4, hidden_dim=32, n_heads=4, n_kv_heads=2, vocab_size=VOCAB)
        load_checkpoint(tmp_path, Transformer(smaller))
    (last / "train_state.pt").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(CheckpointError):
        load_checkpoint(last, other)


def test_optimizer_states_load_by_name(tmp_path: Path) -> None:
    """Checkpoints hold every optimizer by name; one written with a single unnamed optimizer loads as "main"."""
    model = tiny_model()
    optimizer = build_optimizer(model, Recipe().optim, torch.device("cpu"))
    model(PATTERN[None, :8]).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "old", 1, model, {"optimizer": optimizer.state_dict()})
    save_checkpoint(tmp_path / "new", 1, model, {"optimizers": {"main": optimizer.state_dict()}})
    for run in ("old", "new"):
        fresh = build_optimizer(model, Recipe().optim, torch.device("cpu"))
        load_checkpoint(tmp_path / run, model, {"main": fresh})
        p = model.output.weight
        assert torch.equal(fresh.state[p]["exp_avg"], optimizer.state[p]["exp_avg"])
    with pytest.raises(CheckpointError, match="optimizers"):
        load_checkpoint(tmp_path / "new", model, {"generator": fresh, "discriminator": optimizer})


def _mixture_tasks() -> dict[str, ToyLM]:
    return {"a": ToyLM("a", mask_p=0.2), "b": ToyLM("b", shift=3, batches_per_epoch=2)}


def test_resume_continues_bit_exactly(tmp_path: Path) -> None:
    weights = {"a": 2.0, "b": 1.0}
    torch.manual_seed(3)
    init = tiny_model().state_dict()

    def run(out: str, resume: bool = False, stop_at: int | None = None) -> torch.nn.Module:
        model = tiny_model()
        if not resume:
            model.load_state_dict(init)  # a resumed run gets its weights from the checkpoint
        recipe = make_recipe(tmp_path / out, max_steps=10, grad_accum=2, save_every=3, eval_every=4)
        Trainer(recipe, model, _mixture_tasks(), weights).fit(resume=resume, stop_at=stop_at)
        return model

    straight = run("straight")
    run("split", stop_at=5)
    assert latest_checkpoint(tmp_path / "split").name == "step_00000005"
    with pytest.raises(VoxkitError, match="--resume"):
        run("split")  # refuses to overwrite a run that has checkpoints
    resumed = run("split", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    losses = lambda rows: [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]  # noqa: E731
    assert losses(read_scalars(tmp_path / "straight")) == losses(read_scalars(tmp_path / "split"))


# ---------------------------------------------------------------------------- recipes and CLI

RECIPE_TOML = """
[model]
name = "toy_lm"
dim = 32

[optim]
lr = 0.01
warmup_steps = 1

[train]
max_steps = 3
log_every = 1
progress = false

[tasks.toy]
weight = 1.0
shift = 0
"""


@dataclasses.dataclass
class ToyModelOptions:
    dim: int = 32


@dataclasses.dataclass
class ToyTaskOptions:
    shift: int = 0


register_model("toy_lm", ModelSpec(ToyModelOptions, build=lambda options: tiny_model()))
register_task("toy", TaskSpec(ToyTaskOptions, build=lambda options, model, recipe: ToyLM(shift=options.shift)))


def test_cli_trains_from_recipe_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.toml"
    path.write_text(RECIPE_TOML)
    out = tmp_path / "run"
    assert cli_main(["train", str(path), f"train.out_dir={out}"]) == 0
    assert latest_checkpoint(out).name == "step_00000003"
    assert cli_main(["train", str(out / "recipe.json"), "train.max_steps=5", "--resume"]) == 0
    assert latest_checkpoint(out).name == "step_00000005"
    assert cli_main(["train", str(path), "train.max_stepz=5"]) == 2
    assert cli_main(["train", str(path), "model.name=nothing"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'max_stepz' in [train]; did you mean 'max_steps'?" in err and "unknown model 'nothing'" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- DDP




def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = tiny_model()
    task = ToyLM()
    recipe = make_recipe(Path(out_dir), max_steps=3, grad_accum=2, device="cpu")
    Trainer(recipe, model, {"toy": task}, {"toy": 1.0}).fit()
    assert not dist.is_initialized()  # the trainer tears down the group it created
    torch.save({"params": params_of(model), "seen": task.seen}, Path(out_dir) / f"rank{rank}.pt")


def test_ddp_two_cpu_processes_stay_in_sync(tmp_path: Path) -> None:
    assert dist.is_gloo_available(), "this torch build has no gloo backend: CPU DDP cannot run"
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["seen"] == [(0, 0)] * 3 + [(1, 0)] * 3 and r1["seen"] == [(0, 1)] * 3 + [(1, 1)] * 3  # data sharded by rank
    for name, p in r0["params"].items():
        assert torch.equal(p, r1["params"][name]), name
    assert latest_checkpoint(tmp_path).name == "step_00000003"  # rank 0 saved


# ---------------------------------------------------------------------------- time budget


def _budget_run(out_dir: Path, clock_of_step, stop_at: int | None = None, resume: bool = False) -> Trainer:  # noqa: ANN001
    recipe = make_recipe(out_dir, max_steps=1000, time_budget_s=100.0, save_every=0)
    recipe.optim.min_lr_ratio = 0.1
    trainer = Trainer(recipe, tiny_model(), {"toy": ToyLM()}, {"toy": 1.0})
    trainer.clock = lambda: float(clock_of_step(trainer.step))
    trainer.fit(resume=resume, stop_at=stop_at)
    return trainer


def _last_lr(out_dir: Path) -> float:
    return [r["train/lr"] for r in read_scalars(out_dir) if "train/lr" in r][-1]


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        # 1 s per step. Step 60: 40 s left, 3 % slack -> 60 + 38 = 98; re-plan at 75 s: 75 + 24 = 99
        (lambda n: n, 99),
        # 3x slower after step 60: 75 s are reached at step 65 -> 65 + int(0.97 * 25 / 3) = 73
        (lambda n: min(n, 60) + 3 * max(0, n - 60), 73),
    ],
)
def test_time_budget_fits_the_schedule_to_the_time(tmp_path: Path, clock, expected: int) -> None:  # noqa: ANN001
    trainer = _budget_run(tmp_path, clock)
    assert trainer.step == expected
    assert latest_checkpoint(tmp_path).name == f"step_{expected:08d}"
    assert _last_lr(tmp_path) == pytest.approx(0.1 * trainer.recipe.optim.lr)  # the cosine reached its floor at the end
    assert torch.load(latest_checkpoint(tmp_path) / "train_state.pt", weights_only=True)["fitted_max_steps"] == expected


def test_time_budget_stops_and_saves_when_spent(tmp_path: Path) -> None:
    """Steps become 10x slower after the last re-plan (step 75 -> 99): the budget runs out at step
    82 (80 + 2 x 10 s = 100 s) and the loop stops there, saving and evaluating."""
    trainer = _budget_run(tmp_path, lambda n: min(n, 80) + 10 * max(0, n - 80))
    assert trainer.step == 82 and trainer.max_steps == 99
    assert latest_checkpoint(tmp_path).name == "step_00000082"
    assert "eval/toy/loss" in trainer.last_scalars


def test_time_budget_is_checked_every_step_in_one_process(tmp_path: Path) -> None:
    """Steps of 30 s against a 100 s budget, logged every 25 steps: the run stops after step 4
    (120 s), not at the next log step (750 s): slow CPU steps must not overrun the budget."""
    recipe = make_recipe(tmp_path, max_steps=1000, time_budget_s=100.0, save_every=0)
    recipe.train.log_every = 25
    trainer = Trainer(recipe, tiny_model(), {"toy": ToyLM()}, {"toy": 1.0})
    trainer.clock = lambda: 30.0 * trainer.step
    trainer.fit()
    assert trainer.step == 4 and latest_checkpoint(tmp_path).name == "step_00000004"


def test_time_budget_resume_continues_the_fitted_schedule(tmp_path: Path) -> None:
    """Stopped at step 70 (stop_at; no evaluation there) and resumed: the resumed run gets the
    rest of the budget (30 s), not all of it, and keeps the end fitted at step 60 (98; too little
    is left to calibrate again), with the cosine at its floor there."""
    first = _budget_run(tmp_path, lambda n: n, stop_at=70)
    assert first.step == 70 and "eval/toy/loss" not in first.last_scalars
    second = _budget_run(tmp_path, lambda n: n, resume=True)
    assert second.step == 98 and second.budget_used_s == 70.0
    assert _last_lr(tmp_path) == pytest.approx(0.1 * second.recipe.optim.lr)


def _ddp_budget_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    recipe = make_recipe(Path(out_dir), max_steps=1000, time_budget_s=100.0, save_every=0, device="cpu")
    trainer = Trainer(recipe, tiny_model(), {"toy": ToyLM()}, {"toy": 1.0})
    # rank 1's clock runs 2.5x faster: left to itself it would re-plan and stop at other steps
    speed = 1.0 if rank == 0 else 2.5
    trainer.clock = lambda: speed * trainer.step
    trainer.fit()
    torch.save({"step": trainer.step, "max_steps": trainer.max_steps}, Path(out_dir) / f"budget_rank{rank}.pt")


def test_time_budget_under_ddp_follows_rank_0(tmp_path: Path) -> None:
    mp.spawn(_ddp_budget_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"budget_rank{r}.pt", weights_only=True) for r in range(2)]
    assert results[0] == results[1] == {"step": 99, "max_steps": 99}


# ---------------------------------------------------------------------------- SIGTERM


class TermAtStep(ToyLM):
    """Sends this process SIGTERM while the trainer draws batch ``at`` (1-based)."""

    def __init__(self, at: int) -> None:
        super().__init__(batches_per_epoch=100)
        self.at, self.drawn = at, 0

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        for batch in super().train_batches(epoch, rank, world_size):
            self.drawn += 1
            if self.drawn == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch


def test_sigterm_stops_after_the_step_saves_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A job ended by SIGTERM (a scheduler, a script's deadline) keeps what it learned: the step in
    flight finishes, a checkpoint is written there, no evaluation runs, fit returns, and the
    process's own SIGTERM handling is back; a resumed run goes on to max_steps."""
    before = signal.getsignal(signal.SIGTERM)
    recipe = make_recipe(tmp_path, max_steps=20, save_every=0, eval_every=0)
    trainer = Trainer(recipe, tiny_model(), {"toy": TermAtStep(7)}, {"toy": 1.0})
    trainer.fit()
    assert trainer.step == 7 and trainer.max_steps == 20
    assert latest_checkpoint(tmp_path).name == "step_00000007"
    assert "eval/toy/loss" not in trainer.last_scalars
    assert "SIGTERM: stopping at step 7" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
    again = Trainer(make_recipe(tmp_path, max_steps=20, save_every=0), tiny_model(), {"toy": ToyLM(batches_per_epoch=100)}, {"toy": 1.0})
    again.fit(resume=True)
    assert again.step == 20


def test_a_second_sigterm_is_not_caught() -> None:
    heard: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
    try:
        with StopOnSignal() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and heard == []
            os.kill(os.getpid(), signal.SIGTERM)  # goes to whatever handled it before
            assert heard == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
