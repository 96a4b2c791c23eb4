"""Where a training step's time goes: phases, achieved FLOP rate and the top operators.

Runs the recipe's first task on a few of its real batches (read once, kept in memory, so loading
is not measured) exactly as the trainer does (same model, task loss, autocast and AdamW), then:

1. times ``--steps`` steps split into forward (task loss), backward and optimizer, synchronised;
2. counts the step's floating-point operations (torch.utils.flop_counter) and prints the achieved
   TFLOP/s, which tells a launch- or memory-bound step from a compute-bound one;
3. profiles ``--profile-steps`` steps and prints the operators with the most self time (CUDA time
   on a GPU), optionally writing a Chrome trace.

    python scripts/profile_train_step.py recipes/asr_tiny.toml tasks.asr.max_seconds=80 --steps 5
    python scripts/profile_train_step.py recipes/asr_tiny.toml +model.init_from=runs/x/checkpoints/step_1 \\
        model.decoder.n_layers=6 model.decoder.hidden_dim=1536 --trace /tmp/step.json    # on a GPU

Recipe overrides work as in ``voxkit train``; ``train.device`` picks the device.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    ap.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=25, help="operators listed")
    ap.add_argument("--trace", default=None, help="write a Chrome trace of the profiled steps here")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    a = ap.parse_args()

    from voxkit.train.recipe import load_recipe
    from voxkit.train.registry import build_model, build_tasks
    from voxkit.train.task import move_to
    from voxkit.train.trainer import build_optimizer

    if a.threads:
        torch.set_num_threads(a.threads)
    recipe = load_recipe(a.recipe, a.overrides)
    device_name = recipe.train.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe.model).to(device).train()
    tasks = build_tasks(recipe, model)
    name, task = next(iter(tasks.items()))
    batches = []
    epoch = task.train_batches(0, 0, 1)
    for batch in epoch:
        batches.append(move_to(batch, device))
        if len(batches) == a.batches:
            break
    getattr(epoch, "close", lambda: None)()  # loader workers are not needed any more
    optimizer = build_optimizer(model, recipe.optim, device)
    cuda = device.type == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and recipe.train.amp == "bf16" else contextlib.nullcontext()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def step(i: int, clock: dict[str, list[float]] | None = None) -> None:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        with amp:
            loss, _ = task.loss(model, batch)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        if recipe.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if clock is not None:
            for key, value in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", time.perf_counter() - t2)):
                clock[key].append(value)

    print(describe(name, batches, model, device), file=sys.stderr)
    for i in range(2):
        step(i)
    clock: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    for i in range(a.steps):
        step(i, clock)
    total = [sum(parts) for parts in zip(*clock.values(), strict=True)]
    try:
        flops = count_flops(lambda: step(0))
    except AssertionError as exc:  # torch <= 2.11's counter rejects grouped-query SDPA shapes
        flops = 0
        print(f"\nFLOP count unavailable on this torch ({exc})")
    print("\n| phase | median ms | share |\n|---|---:|---:|")
    for key, values in clock.items():
        print(f"| {key} | {1000 * statistics.median(values):.1f} | {statistics.median(values) / statistics.median(total):.0%} |")
    step_s = statistics.median(total)
    print(f"| step | {1000 * step_s:.1f} | |")
    if flops:
        print(f"\n{flops / 1e12:.3f} TFLOP per step (forward + backward) -> {flops / step_s / 1e12:.2f} TFLOP/s achieved on {device}")

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for i in range(a.profile_steps):
            step(i)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\ntop operators over {a.profile_steps} steps, by {sort}\n")
    print(prof.key_averages().table(sort_by=sort, row_limit=a.rows))
    if a.trace:
        prof.export_chrome_trace(a.trace)
        print(f"trace: {a.trace}")


def describe(name: str, batches: list[Any], model: torch.nn.Module, device: torch.device) -> str:
    params = sum(p.numel() for p in model.parameters())
    first = batches[0]
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in first.items() if isinstance(v, torch.Tensor)) if isinstance(first, dict) else ""
    return f"task {name}: {len(batches)} batches (first: {shapes}); model {params / 1e6:.2f} M parameters on {device}"


def count_flops(fn: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


if __name__ == "__main__":
    main()
