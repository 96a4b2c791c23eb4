"""The trainer with several optimizers per task, per-module learning rates, and tasks sharing one model."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from test_train import VOCAB, ToyLM, make_recipe, params_of, read_scalars, tiny_model
from voxkit.errors import VoxkitError
from voxkit.lm import Transformer
from voxkit.train.checkpointing import latest_checkpoint
from voxkit.train.optimizers import build_optimizers
from voxkit.train.recipe import Recipe
from voxkit.train.registry import ModelSpec, TaskSpec, build_model, build_tasks, register_model, register_task
from voxkit.train.task import TaskMixture, Update
from voxkit.train.trainer import Trainer


class ToyGan(torch.nn.Module):
    """A generator and a discriminator on 4-d points."""

    def __init__(self) -> None:
        super().__init__()
        self.gen = torch.nn.Linear(4, 4)
        self.disc = torch.nn.Linear(4, 1)


class GanTask:
    """Discriminator and generator stepped alternately (even steps: discriminator; odd: generator),
    each with its own AdamW; the discriminator at twice the learning rate and other betas."""

    name = "gan"

    def train_batches(self, epoch: int, rank: int, world_size: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(10 * epoch + rank)
        for _ in range(3):
            yield torch.randn(8, 4, generator=g) + 2.0  # [B, 4] "real" points

    def discriminator_loss(self, model: torch.nn.Module, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        fake = model.gen(torch.randn_like(real)).detach()  # global RNG: resume must restore it
        return F.softplus(-model.disc(real)).mean() + F.softplus(model.disc(fake)).mean(), {"real_score": model.disc(real).mean()}

    def generator_loss(self, model: torch.nn.Module, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return F.softplus(-model.disc(model.gen(torch.randn_like(real)))).mean(), {}

    loss = generator_loss

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def optimizers(self, model: ToyGan) -> dict[str, list[dict]]:
        return {
            "generator": [{"params": model.gen.parameters()}],
            "discriminator": [{"params": model.disc.parameters(), "lr_scale": 2.0, "betas": (0.5, 0.9)}],
        }

    def updates(self) -> list[Update]:
        return [Update("discriminator", self.discriminator_loss, every=2), Update("generator", self.generator_loss, every=2, start=1)]


def test_two_optimizers_step_alternately_and_resume_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    init = ToyGan().state_dict()

    def run(out: str, stop_at: int | None = None, resume: bool = False) -> tuple[ToyGan, Trainer]:
        model = ToyGan()
        model.load_state_dict(init)
        recipe = make_recipe(tmp_path / out, max_steps=6, grad_accum=2, save_every=0)
        recipe.optim.warmup_steps, recipe.optim.schedule = 0, "constant"
        trainer = Trainer(recipe, model, {"gan": GanTask()}, {"gan": 1.0})
        trainer.fit(resume=resume, stop_at=stop_at)
        return model, trainer

    def moved(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))

    before = {k: v.clone() for k, v in init.items()}
    for step in range(1, 5):  # one step per run, resumed from the previous run's checkpoint
        model, trainer = run("split", stop_at=step, resume=step > 1)
        after = params_of(model)
        discriminator_step = step % 2 == 1  # 0-based step step-1 is even
        assert moved(before, after, "disc.") == discriminator_step and moved(before, after, "gen.") != discriminator_step, step
        before = after
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(2 * trainer.recipe.optim.lr)
    assert trainer.optimizers["discriminator"].param_groups[0]["betas"] == (0.5, 0.9)
    assert trainer.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(trainer.recipe.optim.lr)
    rows = {r["step"]: r for r in read_scalars(tmp_path / "split") if "train/loss" in r}
    assert {"train/gan/discriminator/loss", "train/gan/discriminator/real_score", "train/grad_norm/discriminator"} <= set(rows[1])
    assert {"train/gan/generator/loss", "train/grad_norm/generator"} <= set(rows[2])
    assert "train/gan/generator/loss" not in rows[1] and "train/grad_norm/discriminator" not in rows[2]

    straight, _ = run("straight")
    resumed, _ = run("split", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    states = [torch.load(latest_checkpoint(tmp_path / d) / "train_state.pt", weights_only=True)["optimizers"]
              for d in ("straight", "split")]
    assert sorted(states[0]) == sorted(states[1]) == ["discriminator", "generator"]
    for name in states[0]:  # both optimizers' moments came back exactly
        for index, moments in states[0][name]["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, states[1][name]["state"][index][key]), (name, index, key)


class HeadLrTask(ToyLM):
    """The output head learns at 10x the rate of the rest (per-module learning rates)."""

    def optimizers(self, model: Transformer) -> dict[str, list[dict]]:
        return {"main": [{"params": model.output.parameters(), "lr_scale": 10.0}]}


def test_per_module_learning_rates(tmp_path: Path) -> None:
    """Adam's first step moves every weight by lr * sign(grad): 10x as far in the head as elsewhere."""
    model = tiny_model()
    before = params_of(model)
    recipe = make_recipe(tmp_path, max_steps=1, save_every=0)
    recipe.optim.warmup_steps, recipe.optim.weight_decay, recipe.optim.grad_clip = 0, 0.0, 0.0
    Trainer(recipe, model, {"toy": HeadLrTask()}, {"toy": 1.0}).fit()
    step = {k: (v - before[k]).abs().max().item() for k, v in params_of(model).items()}
    assert step["output.weight"] == pytest.approx(10 * recipe.optim.lr, rel=1e-3)
    assert step["layers.0.attention.wq.weight"] == pytest.approx(recipe.optim.lr, rel=1e-3)
    assert step["norm.weight"] == pytest.approx(recipe.optim.lr, rel=1e-3)
    # a declared group without weight_decay gets the usual split; everything undeclared stays in "main"
    optimizers = build_optimizers(model, {"toy": HeadLrTask()}, Recipe().optim, torch.device("cpu"))
    assert list(optimizers) == ["main"]
    groups = optimizers["main"].param_groups
    head = next(g for g in groups if any(p is model.output.weight for p in g["params"]))
    assert head["lr_scale"] == 10.0 and head["weight_decay"] == Recipe().optim.weight_decay and len(head["params"]) == 1
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_conflicting_or_missing_optimizers_are_refused(tmp_path: Path) -> None:
    class Claims(ToyLM):
        def __init__(self, name: str, scale: float) -> None:
            super().__init__(name)
            self.scale = scale

        def optimizers(self, model: Transformer) -> dict[str, list[dict]]:
            return {"main": [{"params": model.output.parameters(), "lr_scale": self.scale}]}

    model = tiny_model()
    same = build_optimizers(model, {"a": Claims("a", 2.0), "b": Claims("b", 2.0)}, Recipe().optim, torch.device("cpu"))
    assert sum(len(g["params"]) for g in same["main"].param_groups) == len(list(model.parameters()))  # a shared claim counts once
    with pytest.raises(VoxkitError, match="claimed by task 'a'"):
        build_optimizers(model, {"a": Claims("a", 2.0), "b": Claims("b", 3.0)}, Recipe().optim, torch.device("cpu"))

    class Orphan(ToyLM):
        def updates(self) -> list[Update]:
            return [Update("critic", self.loss)]

    with pytest.raises(VoxkitError, match="optimizer 'critic'"):
        Trainer(make_recipe(tmp_path, max_steps=1), tiny_model(), {"toy": Orphan()}, {"toy": 1.0}).fit()


class TwoHeads(torch.nn.Module):
    """One backbone, one output head per task."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, dim)
        self.backbone = torch.nn.Linear(dim, dim)
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(dim, VOCAB), "b": torch.nn.Linear(dim, VOCAB)})

    def forward(self, tokens: torch.Tensor, head: str) -> torch.Tensor:
        return self.heads[head](torch.tanh(self.backbone(self.embed(tokens))))  # [B, T, V]


@dataclasses.dataclass
class TwoHeadsOptions:
    dim: int = 16


@dataclasses.dataclass
class HeadTaskOptions:
    head: str = "a"
    shift: int = 0


class HeadTask(ToyLM):
    """Next-token prediction through one of the shared model's heads; logs whose backward reaches the backbone."""

    active: list[str] = []  # the task whose micro-batch is running (set in loss, read by the backward hook)

    def __init__(self, options: HeadTaskOptions, model: TwoHeads) -> None:
        super().__init__(f"head_{options.head}", shift=options.shift)
        self.head, self.model = options.head, model

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        HeadTask.active[:] = [self.name]
        logits = model(batch[:, :-1], self.head)  # [B, T, V]
        return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()), {}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}


register_model("two_heads", ModelSpec(TwoHeadsOptions, build=lambda options: TwoHeads(options.dim)))
register_task("head", TaskSpec(HeadTaskOptions, build=lambda options, model: HeadTask(options, model)))


def test_tasks_of_a_recipe_share_one_model_instance(tmp_path: Path) -> None:
    recipe = Recipe.from_dict({
        "model": {"name": "two_heads", "dim": 16},
        "tasks": {"left": {"type": "head", "head": "a"}, "right": {"type": "head", "head": "b", "shift": 3, "weight": 1.0}},
    })
    recipe.train.out_dir, recipe.train.grad_accum, recipe.train.progress, recipe.train.max_steps = str(tmp_path), 4, False, 3
    torch.manual_seed(0)
    model = build_model(recipe.model)
    tasks = build_tasks(recipe, model)
    assert tasks["left"].model is tasks["right"].model is model
    reached: list[str] = []
    model.backbone.weight.register_hook(lambda grad: reached.append(HeadTask.active[0]))
    before = params_of(model)
    Trainer(recipe, model, tasks).fit()
    drawn = TaskMixture(tasks, recipe.task_weights(), seed=0).draw(3 * 4)
    assert Counter(reached) == Counter(tasks[name].name for name in drawn)  # every micro-batch reached it, from either task
    assert set(reached) == {"head_a", "head_b"}
    after = params_of(model)
    assert all(not torch.equal(before[k], after[k]) for k in ("backbone.weight", "heads.a.weight", "heads.b.weight", "embed.weight"))


