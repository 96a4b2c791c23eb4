"""A resume that changes ``train.grad_accum`` on the same number of processes says that a step now
averages another number of micro-batches (it did so only when the number of processes changed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_train import ToyLM, make_recipe, tiny_model
from voxkit.train.trainer import Trainer


def test_a_resume_with_another_grad_accum_says_what_a_step_averages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Trainer(make_recipe(tmp_path, max_steps=2, grad_accum=2), tiny_model(), {"toy": ToyLM()}, {"toy": 1.0}).fit()
    capsys.readouterr()
    Trainer(make_recipe(tmp_path, max_steps=3, grad_accum=3), tiny_model(), {"toy": ToyLM()}, {"toy": 1.0}).fit(resume=True)
    err = capsys.readouterr().err
    assert "the checkpoint was written with train.grad_accum=2, this run has 3: a step now averages 3 micro-batches instead of 2" in err
    Trainer(make_recipe(tmp_path, max_steps=4, grad_accum=3), tiny_model(), {"toy": ToyLM()}, {"toy": 1.0}).fit(resume=True)
    err = capsys.readouterr().err
    assert "resumed from" in err and "grad_accum" not in err  # unchanged since the last checkpoint: nothing to say
