"""The GPU benchmark script (python -m voxkit.bench.kernels) run whole on the CPU at tiny sizes.

No speed is checked here: these tests show that every section runs and reports, that the JSON has
what the GPU run will be read for, that the correctness check fails for a wrong kernel, and that a
failing or overrunning section does not stop the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from voxkit.bench import correctness, harness, kernels, models
from voxkit.bench.harness import Budget, Section, run_sections
from voxkit.bench.opspecs import SPECS, spec
from voxkit.ops import registry
from voxkit.ops.norm import rms_norm_reference
from voxkit.ops.swiglu import swiglu_reference

SECTIONS = ("env", "copy", "correctness", "ops", "train", "decode", "streams")
OPS = ("rms_norm", "ada_rms_norm", "add_rms_norm", "rope", "swiglu")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "voxkit.bench.kernels", "--device", "cpu", "--quick", "--seed", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, json.loads(out.read_text())


def run_main(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    rc = kernels.main(["--device", "cpu", "--quick", "--seed", "5", "--out", str(out), *argv])
    return rc, json.loads(out.read_text())


def test_quick_cpu_run_prints_and_saves_every_section(quick_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    proc, data = quick_run
    for name in SECTIONS:
        assert f"=== [{name}]" in proc.stdout
        assert data["sections"][name]["status"] == "ok", data["sections"][name]
        assert name in data
    assert {"meta", "goals", "markdown"} <= set(data)
    env = data["env"]
    assert env["torch"] == torch.__version__ and env["device"].startswith("CPU")
    assert set(env["paths"]) >= set(OPS)
    assert data["copy"]["same_size_bps"] > 0 and data["copy"]["big_bps"] > 0
    ops = data["ops"]["rows"]
    assert set(ops) == set(OPS)
    for name, row in ops.items():
        assert row["fwd_bytes"] > 0 and row["bwd_bytes"] > 0
        for column in ("eager", "torch.compile"):
            assert row["columns"][column]["fwd_s"] > 0 and row["columns"][column]["bwd_s"] > 0, (name, column)
        if row["path"] == "reference":  # never report the reference's time as voxkit's
            assert "fwd_s" not in row["columns"]["voxkit"]
    assert "fwd_s" in ops["rms_norm"]["columns"]["F.rms_norm"]
    train = data["train"]["rows"]
    assert train and all(r["off_s"] > 0 and r["on_s"] > 0 for r in train)
    decode = {r["variant"]: r for r in data["decode"]["rows"]}
    assert decode["eager"]["tok_s"] > 0 and decode["eager-off"]["tok_s"] > 0 and decode["transformers"]["tok_s"] > 0
    assert decode["transformers"]["same_tokens"] == decode["transformers"]["new_tokens"]  # same weights, same greedy tokens
    assert data["decode"]["bound_tok_s"] > 0
    assert data["streams"]["max_realtime_on"] >= 1 and data["streams"]["rows"]
    goals = data["goals"]
    assert len(goals) == 8 and all(g["status"] in ("PASS", "MISS") and g["detail"] for g in goals)
    for g in goals:
        assert f"{g['status']} {g['goal']}" in proc.stdout
    assert data["markdown"].startswith("Measured on") and "| op (forward, bf16) |" in data["markdown"]
    assert "=== markdown for docs/benchmarks.md ===" in proc.stdout


def test_references_pass_the_float64_check(quick_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _, data = quick_run
    corr = data["correctness"]
    assert corr["checked"] == sum(len(s.cases) for s in SPECS) * len(correctness.DTYPES)
    assert corr["passed"] and corr["passed_cases"] == corr["checked"]
    assert {c["dtype"] for c in corr["cases"]} == {"bfloat16", "float16", "float32"}
    assert any("strided" in c["case"] for c in corr["cases"]) and any("4097" in c["case"] for c in corr["cases"])


@pytest.mark.parametrize("breakage", ["off by 5 %", "last column unwritten"])
def test_the_check_fails_for_a_broken_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str], breakage: str) -> None:
    def broken(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        y = rms_norm_reference(x, weight, eps)
        if breakage == "off by 5 %":
            return y * 1.05
        y = y.clone()
        y[..., -1] = float("nan")  # what a kernel that skips the last element leaves in poisoned memory
        return y

    registry.register_implementation("rms_norm", "cpu", "broken-for-test", broken)
    try:
        rc, data = run_main(tmp_path, "--sections", "correctness")
    finally:
        registry.unregister_implementation("rms_norm", "cpu", "broken-for-test")
    assert rc == 1
    corr = data["correctness"]
    assert not corr["passed"]
    failed = [c for c in corr["cases"] if not c["ok"]]
    assert len(failed) == len(spec("rms_norm").cases) * len(correctness.DTYPES)
    assert all(c["op"] == "rms_norm" and c["path"] == "broken-for-test" for c in failed)
    assert all(c["fwd"] == "inf" if breakage == "last column unwritten" else c["fwd"] > 1 for c in failed)
    if breakage == "last column unwritten":
        assert all("non-finite" in " ".join(c["problems"]) for c in failed)
    out = capsys.readouterr().out
    assert "FAIL rms_norm" in out and "MISS every kernel within tolerance" in out


def test_a_registered_kernel_is_timed_as_voxkit(tmp_path: Path) -> None:
    registry.register_implementation("swiglu", "cpu", "test-swiglu", lambda g, u: swiglu_reference(g, u))
    try:
        rc, data = run_main(tmp_path, "--sections", "copy,ops", "--reps", "2")
    finally:
        registry.unregister_implementation("swiglu", "cpu", "test-swiglu")
    assert rc == 0
    row = data["ops"]["rows"]["swiglu"]
    assert row["path"] == "test-swiglu"
    assert row["columns"]["voxkit"]["fwd_s"] > 0 and row["columns"]["voxkit"]["bwd_s"] > 0
    rms = data["ops"]["rows"]["rms_norm"]
    assert rms["path"] == "reference" and "fwd_s" not in rms["columns"]["voxkit"]
    goal = next(g for g in data["goals"] if g["goal"].startswith("SwiGLU"))
    assert "vs torch.compile" in goal["detail"]


def test_streams_search_refines_the_largest_real_time_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a step takes 1 ms per stream: real-time (p95 < 80 ms) up to 79 streams
    monkeypatch.setattr(models, "step_times", lambda model, tok, n, warmup, steps, device, **kw: [0.001 * n] * steps)
    rc, data = run_main(tmp_path, "--sections", "streams", "--max-streams", "512", "--stream-sizes", "1,2,4,8,16,32,64,128,256,512")
    assert rc == 0
    st = data["streams"]
    assert [r["streams"] for r in st["rows"]] == [1, 2, 4, 8, 16, 32, 64, 128, 96, 80, 72]
    assert st["max_realtime_on"] == 72 and st["max_realtime_off"] == 64 and st["limited_by"] == "step time"


def test_a_failing_or_overrunning_section_does_not_stop_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "ALARM_GRACE_S", 0.0)

    def boom(ctx: harness.Context) -> None:
        raise RuntimeError("kaput")

    def slow(ctx: harness.Context) -> None:
        ctx.data["partial"] = 1
        time.sleep(10)

    def fine(ctx: harness.Context) -> None:
        ctx.data["value"] = 42

    opts = SimpleNamespace(out=str(tmp_path / "r.json"))
    results: dict = {}
    sections = [Section("a", "raises", boom, 0, 10), Section("b", "overruns", slow, 0, 0.5), Section("c", "works", fine, 0, 10)]
    start = time.monotonic()
    run_sections(sections, {"a", "b", "c"}, Budget(60, time.monotonic()), opts, torch.device("cpu"), results)
    assert time.monotonic() - start < 5
    status = results["sections"]
    assert status["a"]["status"] == "error" and "kaput" in status["a"]["error"]
    assert status["b"]["status"] == "timeout" and results["b"] == {"partial": 1}
    assert status["c"]["status"] == "ok" and results["c"] == {"value": 42}
    assert json.loads(Path(opts.out).read_text())["c"] == {"value": 42}
    run_sections([Section("d", "too big", fine, 100, 100)], {"d"}, Budget(60, time.monotonic()), opts, torch.device("cpu"), results)
    assert results["sections"]["d"]["status"] == "skipped" and results["d"] == {}


def test_error_ratio_flags_unwritten_and_misshapen_outputs() -> None:
    ref = torch.randn(4, 8, dtype=torch.float64)
    good = ref.to(torch.bfloat16)
    assert correctness.error_ratio(good, ref, torch.bfloat16)[0] <= 1
    poisoned = good.clone()
    poisoned[1, 3] = float("nan")
    ratio, why = correctness.error_ratio(poisoned, ref, torch.bfloat16)
    assert ratio == float("inf") and "non-finite" in why
    assert "shape" in correctness.error_ratio(good[:, :7], ref, torch.bfloat16)[1]
    assert "dtype" in correctness.error_ratio(good.float(), ref, torch.bfloat16)[1]


def test_unknown_sections_are_refused() -> None:
    with pytest.raises(SystemExit):
        kernels.parse(["--sections", "ops,nonsense"])


def test_decode_without_transformers_still_measures_voxkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise ImportError("No module named 'transformers'")

    monkeypatch.setattr(models, "build_hf_mistral", missing)
    rc, data = run_main(tmp_path, "--sections", "decode")
    assert rc == 0 and data["sections"]["decode"]["status"] == "ok"
    rows = {r["variant"]: r for r in data["decode"]["rows"]}
    assert rows["eager"]["tok_s"] > 0 and "transformers" in rows["transformers"]["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_asking_for_a_gpu_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert kernels.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "sees no CUDA GPU" in err and "Traceback" not in err
    assert kernels.main(["--device", "gpu0"]) == 2
    assert "is not a device" in capsys.readouterr().err
