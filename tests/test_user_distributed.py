"""Distributed training on CPU used the way a user uses it: two gloo processes against one, a recipe
whose model has a part the loss never reaches, SIGTERM to one process, a resume with another number
of processes, and mistakes reported once per machine rather than once per process."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cli_helpers import one_line_error, run_cli
from ports import free_port
from test_train import make_recipe as train_recipe
from voxkit.lm import Transformer, TransformerArgs
from voxkit.train.checkpointing import latest_checkpoint
from voxkit.train.recipe import Recipe
from voxkit.train.task import TaskMixture
from voxkit.train.trainer import Trainer

VOCAB = 16
STREAM = torch.arange(64) % VOCAB  # a counting sequence, easy to learn


def small_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerArgs(dim=16, n_layers=1, head_dim=8, hidden_dim=32, n_heads=2, n_kv_heads=2, vocab_size=VOCAB))


class WithIdleHead(nn.Module):
    """A language model plus a head that the loss never uses (as a CTC head whose weight is 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = small_model()
        self.idle_head = nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm(tokens)


class StridedLM:
    """Next-token windows from one list of batches per epoch, rank r taking every world_size-th batch,
    as voxkit's loaders shard; one process with ``grad_accum = 2`` then sees what two processes see."""

    name = "strided"

    def __init__(self, n_batches: int = 8, term_rank: int = -1, term_at: int = 0) -> None:
        self.n_batches = n_batches
        self.term_rank, self.term_at, self.drawn = term_rank, term_at, 0  # SIGTERM to this process at its term_at-th batch

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(epoch)
        starts = torch.randint(0, len(STREAM) - 9, (self.n_batches, 3), generator=g)
        for b in range(rank, self.n_batches, world_size):
            self.drawn += 1
            if rank == self.term_rank and self.drawn == self.term_at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield torch.stack([STREAM[s : s + 9] for s in starts[b].tolist()])

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch[:, :-1])  # [B, T, V]
        return F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()), {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {}


def make_recipe(out_dir: Path, **train: Any) -> Recipe:
    """test_train's recipe on the CPU, warmed up in one step."""
    recipe = train_recipe(out_dir, device="cpu", **train)
    recipe.optim.warmup_steps = 1
    return recipe




def _join(rank: int, world_size: int, port: int) -> None:
    """torchrun's environment, which the trainer reads."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _losses(out_dir: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (out_dir / "scalars.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- 2 processes = 1 process


def _strided_worker(rank: int, world_size: int, port: int, out_dir: str, max_steps: int, stop_at: int) -> None:
    _join(rank, world_size, port)
    Trainer(make_recipe(Path(out_dir), max_steps=max_steps), small_model(), {"strided": StridedLM()}, {"strided": 1.0}).fit(stop_at=stop_at)


def test_two_processes_train_as_one_and_resume_on_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two processes with grad_accum 1 follow one process with grad_accum 2 (same batches per step);
    a run stopped on two processes and resumed on one keeps its place in the epoch, so it ends where
    an uninterrupted one-process run ends, and the resume says what changed."""
    one = tmp_path / "one"
    model = small_model()
    Trainer(make_recipe(one, max_steps=6, grad_accum=2), model, {"strided": StridedLM()}, {"strided": 1.0}).fit()
    mp.spawn(_strided_worker, args=(2, free_port(), str(tmp_path / "two"), 6, 3), nprocs=2, join=True)
    capsys.readouterr()
    resumed = small_model()
    Trainer(make_recipe(tmp_path / "two", max_steps=6, grad_accum=2), resumed, {"strided": StridedLM()}, {"strided": 1.0}).fit(resume=True)
    err = capsys.readouterr().err
    assert "written by 2 processes, this run has 1: a step still averages 2 micro-batches" in err
    torch.testing.assert_close(_losses(tmp_path / "two"), _losses(one))
    torch.testing.assert_close(_params(resumed), _params(model))


def test_the_mixture_keeps_the_epoch_fraction_when_the_number_of_processes_changes() -> None:
    """Going from 2 processes to 1 continues at the first batch neither process had; going from 1 to
    2 continues with the next batch on each process, none skipped."""
    task = StridedLM(n_batches=12)

    def first_rows(batch: torch.Tensor) -> int:
        return int(batch[0, 0])

    reference = [first_rows(b) for b in task.train_batches(0, 0, 1)]
    two = TaskMixture({"strided": task}, {"strided": 1.0}, seed=0, rank=0, world_size=2)
    for _ in range(2):
        two.next_batch("strided")
    one = TaskMixture({"strided": task}, {"strided": 1.0}, seed=0)
    one.load_state_dict(two.state_dict(), saved_world_size=2)
    assert first_rows(one.next_batch("strided")) == reference[4]

    one = TaskMixture({"strided": task}, {"strided": 1.0}, seed=0)
    for _ in range(4):
        one.next_batch("strided")
    for rank in (0, 1):
        again = TaskMixture({"strided": task}, {"strided": 1.0}, seed=0, rank=rank, world_size=2)
        again.load_state_dict(one.state_dict(), saved_world_size=1)
        assert first_rows(again.next_batch("strided")) == reference[4 + rank]


# ---------------------------------------------------------------------------- a parameter without gradient


def _idle_head_worker(rank: int, world_size: int, port: int, out_dir: str, find_unused: bool) -> None:
    _join(rank, world_size, port)
    model = WithIdleHead()
    before = _params(model)
    recipe = make_recipe(Path(out_dir), max_steps=3, find_unused_parameters=find_unused)
    outcome: dict[str, Any] = {}
    try:
        Trainer(recipe, model, {"strided": StridedLM()}, {"strided": 1.0}).fit()
    except Exception as err:  # the test reads what each rank raised
        outcome["error"] = f"{type(err).__name__}: {err}"
    outcome["unchanged"] = all(torch.equal(before[k], v) for k, v in _params(model).items())
    outcome["group_left"] = not dist.is_initialized()
    torch.save(outcome, Path(out_dir) / f"rank{rank}.pt")


def test_a_parameter_the_loss_never_reaches_stops_ddp_with_one_line_before_any_update(tmp_path: Path) -> None:
    """One process trains such a model; under DDP it would step on unreduced gradients and then fail
    with a long error on every rank. Every rank stops before the first update with one line naming
    the parameter and the key; with the key set, it trains."""
    mp.spawn(_idle_head_worker, args=(2, free_port(), str(tmp_path), False), nprocs=2, join=True)
    outcomes = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for outcome in outcomes:
        error = outcome.get("error", "")
        assert error.startswith("VoxkitError: ") and "\n" not in error, error
        assert "'idle_head.weight'" in error and "train.find_unused_parameters = true" in error and "step 1" in error
        assert outcome["unchanged"] and outcome["group_left"]
    assert latest_checkpoint(tmp_path) is None

    fixed = tmp_path / "fixed"
    mp.spawn(_idle_head_worker, args=(2, free_port(), str(fixed), True), nprocs=2, join=True)
    for r in (0, 1):
        assert "error" not in torch.load(fixed / f"rank{r}.pt", weights_only=True)
    assert latest_checkpoint(fixed).name == "step_00000003"


# ---------------------------------------------------------------------------- SIGTERM to one process


def _term_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    _join(rank, world_size, port)
    trainer = Trainer(make_recipe(Path(out_dir), max_steps=40, log_every=2, save_every=0), small_model(),
                      {"strided": StridedLM(n_batches=200, term_rank=1, term_at=3)}, {"strided": 1.0})
    trainer.fit()
    torch.save({"step": trainer.step}, Path(out_dir) / f"rank{rank}.pt")


def test_sigterm_to_one_process_stops_every_process_with_a_checkpoint(tmp_path: Path) -> None:
    """`kill PID` of one worker (not of torchrun) stops the whole run at the next log step, saved;
    the signalled process does not go on as if nothing happened."""
    mp.spawn(_term_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    steps = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["step"] for r in (0, 1)]
    assert steps[0] == steps[1] == 4  # asked during step 3, agreed at log step 4
    assert latest_checkpoint(tmp_path).name == "step_00000004"


# ---------------------------------------------------------------------------- mistakes, once per machine


@pytest.mark.parametrize(("override", "named"), [("train.max_stepz=3", "'max_stepz'"), ("model.name=nothing", "'nothing'")])
def test_a_mistake_is_printed_by_the_first_process_of_a_machine_only(
    override: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process finds the same mistake; eight copies of one line (one per GPU) bury it."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nname = "x"\n[train]\nout_dir = "{tmp_path / "run"}"\n')
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, _, err = run_cli(["train", str(recipe), override], capsys)
    assert code == 2 and named in one_line_error(err)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert run_cli(["train", str(recipe), override], capsys) == (2, "", "")


def test_an_error_raised_in_training_is_printed_once(tmp_path: Path) -> None:
    """The same mistake found inside the trainer (here: an idle parameter) is one line, not one per rank."""
    mp.spawn(_cli_idle_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    outputs = [json.loads((tmp_path / f"cli{r}.json").read_text()) for r in (0, 1)]
    assert [o["code"] for o in outputs] == [2, 2]
    assert "train.find_unused_parameters = true" in one_line_error(outputs[0]["err"])
    assert outputs[1]["err"] == ""


def _cli_idle_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    import contextlib
    import dataclasses
    import io

    from voxkit.cli.main import main as cli_main
    from voxkit.train.registry import ModelSpec, TaskSpec, register_model, register_task

    @dataclasses.dataclass
    class NoOptions:
        pass

    register_model("idle_head_lm", ModelSpec(NoOptions, build=lambda options: WithIdleHead()))
    register_task("strided", TaskSpec(NoOptions, build=lambda options, model, recipe: StridedLM()))
    _join(rank, world_size, port)
    recipe = Path(out_dir) / f"r{rank}.toml"
    recipe.write_text(f'[model]\nname = "idle_head_lm"\n[train]\nmax_steps = 3\nprogress = false\ndevice = "cpu"\n'
                      f'out_dir = "{Path(out_dir) / "run"}"\n[tasks.strided]\n')
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(["train", str(recipe)])
    lines = [ln for ln in err.getvalue().splitlines() if not ln.startswith("model idle_head_lm")]  # rank 0's summary
    (Path(out_dir) / f"cli{rank}.json").write_text(json.dumps({"code": code, "err": "\n".join(lines)}))


def test_one_process_still_trains_a_model_with_an_idle_part(tmp_path: Path) -> None:
    """The idle-parameter check is DDP's: one process trains the same model as before."""
    Trainer(make_recipe(tmp_path, max_steps=2), WithIdleHead(), {"strided": StridedLM()}, {"strided": 1.0}).fit()
    assert latest_checkpoint(tmp_path).name == "step_00000002"


def test_an_error_of_one_rank_in_training_is_said_by_that_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once training runs, ranks read different shards: a broken clip in rank 1's shard made rank 1
    exit in silence while rank 0 waited, and the cause was never shown."""
    import argparse

    from voxkit.cli import train as train_cli
    from voxkit.errors import AudioError

    def failing(args: argparse.Namespace) -> int:
        args.training_started = True
        raise AudioError("cannot decode audio clip7.flac: lost sync")

    monkeypatch.setattr(train_cli, "_run", failing)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(AudioError, match=r"^\[rank 1\] cannot decode audio clip7\.flac: lost sync$"):
        train_cli.run(argparse.Namespace())
