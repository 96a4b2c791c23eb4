"""The trainer's precision: CPU steps are float32 unless train.cpu_amp asks for bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from test_train import ToyLM, make_recipe, read_scalars, tiny_model
from voxkit.train.recipe import RecipeError
from voxkit.train.trainer import Trainer


class AutocastProbe(ToyLM):
    """Records whether the loss ran under CPU bf16 autocast and in which dtype the logits came out."""

    def __init__(self) -> None:
        super().__init__()
        self.autocast: list[bool] = []
        self.dtypes: list[torch.dtype] = []

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        self.dtypes.append(model(batch[:, :-1]).dtype)
        return super().loss(model, batch)


def test_cpu_amp_is_opt_in_and_still_learns(tmp_path: Path) -> None:
    """CPU steps are float32 by default; train.cpu_amp runs them under bf16 autocast, and the model still learns."""
    plain = AutocastProbe()
    Trainer(make_recipe(tmp_path / "fp32", max_steps=2, save_every=0), tiny_model(), {"toy": plain}, {"toy": 1.0}).fit()
    assert not any(plain.autocast) and set(plain.dtypes) == {torch.float32}
    recipe = make_recipe(tmp_path / "bf16", max_steps=40, log_every=5, save_every=0, cpu_amp=True)
    recipe.optim.schedule = "constant"
    probe = AutocastProbe()
    model = tiny_model()
    Trainer(recipe, model, {"toy": probe}, {"toy": 1.0}).fit()
    assert all(probe.autocast) and set(probe.dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights and optimizer stay float32
    rows = [r for r in read_scalars(tmp_path / "bf16") if "train/loss" in r]
    assert rows[-1]["train/loss"] < 0.3 * rows[0]["train/loss"]
    bad = make_recipe(tmp_path / "bad", cpu_amp=True)
    bad.train.amp = "off"
    with pytest.raises(RecipeError, match="cpu_amp"):
        bad.validate()
