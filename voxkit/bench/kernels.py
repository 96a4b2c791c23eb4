"""One GPU run that checks and measures voxkit's fused kernels, and what they change end to end.

    python -m voxkit.bench.kernels --out bench.json          # a CUDA machine: under 5 minutes, build included
    python -m voxkit.bench.kernels --device cpu --quick      # every section at tiny sizes on the CPU (the tests)
    python -m voxkit.bench.kernels --sections ops,decode     # some sections only (env always runs)

Sections, in order (each in its own try/except, within its share of ``--budget``):

- env: device, versions, the kernels' build (``voxkit.ops.cuda_kernels.load()``), each op's active path;
- copy: copy bandwidth of the timed tensor and of 1 GiB (the roofline of the memory-bound ops);
- correctness: every op at odd and ordinary shapes, bf16/fp16/fp32, forward and gradients,
  outputs poisoned with NaN first, against the reference in float64;
- ops: µs and TB/s per op, voxkit next to F.rms_norm, torch.compile, eager and Liger-Kernel;
- train: a backbone training step (Mistral-7B layers), kernels off vs on;
- decode: batch-1 decode of a Mistral-7B-shaped model, voxkit vs transformers vs the bandwidth bound;
- streams: how many live full-size Voxtral-Realtime streams one GPU keeps real-time.

Then the goals as PASS/MISS lines and a markdown block for docs/benchmarks.md. Everything is also
written to ``--out`` (JSON, rewritten after each section). Exit status 1 when a correctness case
failed, else 0 (a missed speed goal is a result, not an error).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import faulthandler
import os
import secrets
import sys
import time
from typing import Any

START = time.monotonic()

import torch  # noqa: E402 (the clock starts before the heavy import)

from voxkit.bench import correctness, endtoend, flags, opspeed, report  # noqa: E402
from voxkit.bench.harness import Budget, Context, Section, run_sections, say, write_json  # noqa: E402
from voxkit.bench.machine import describe, library_version  # noqa: E402
from voxkit.bench.timing import Timer, copy_bandwidth  # noqa: E402

SECTION_NAMES = ("copy", "correctness", "ops", "train", "decode", "streams")
PEERS = ("triton", "transformers", "liger-kernel")  # the libraries the ops and decode sections are timed against


def run_env(ctx: Context) -> None:
    data, device = ctx.data, ctx.device
    data.update(torch=torch.__version__, cuda=torch.version.cuda, triton=library_version("triton"),
                transformers=library_version("transformers"), liger=library_version("liger-kernel"), python=sys.version.split()[0],
                date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    if ctx.cuda:
        props = torch.cuda.get_device_properties(device)
        data.update(device=torch.cuda.get_device_name(device), memory_gib=round(props.total_memory / 2**30, 1),
                    sms=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
    else:
        data["device"] = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    say(f"  device: {data['device']}" + (f", {data['memory_gib']} GiB, {data['sms']} SMs, sm_{data['capability']}" if ctx.cuda else ""))
    say(f"  torch {data['torch']}, CUDA {data['cuda']}, Triton {data['triton']}, transformers {data['transformers']}, "
        f"Liger-Kernel {data['liger'] or 'not installed'}, Python {data['python']}; {data['date']}")
    kernels: dict[str, Any] = {}
    data["kernels"] = kernels
    try:
        from voxkit.ops import cuda_kernels
    except ImportError as err:
        kernels.update(loaded=False, status=f"voxkit.ops.cuda_kernels is missing ({err})")
        say(f"  MISS kernels: {kernels['status']}")
    else:
        if ctx.cuda:
            start = time.perf_counter()
            try:
                module = cuda_kernels.load()
            except Exception as err:
                module = None
                kernels["error"] = f"{type(err).__name__}: {err}"
            kernels.update(loaded=module is not None, load_s=round(time.perf_counter() - start, 1))
        else:
            kernels["loaded"] = False
        try:
            kernels["status"] = str(cuda_kernels.status())
        except Exception as err:
            kernels["status"] = f"status() failed: {type(err).__name__}: {err}"
        if not ctx.cuda:
            kernels["status"] = f"not built on a CPU ({kernels['status']})"
        verdict = "ok" if kernels["loaded"] else "MISS"
        say(f"  {verdict} kernels: {kernels['status']}" + (f" (load() took {kernels['load_s']} s)" if "load_s" in kernels else "")
            + (f"; {kernels['error']}" if "error" in kernels else ""))
    from voxkit.ops import registry

    data["paths"] = {}
    for name, active, available in registry.describe(device.type):
        data["paths"][name] = active
        say(f"  op {name:14s} -> {active:10s} (available: {', '.join(available)})")
    if ctx.cuda:
        data["sdpa_masked_gqa"] = choice = _sdpa_choice(device)
        say(f"  SDPA kernel for a masked GQA decode step (a live stream's attention): {choice}")


def _sdpa_choice(device: torch.device) -> str:
    """Which of SDPA's kernels serves a streaming step's attention: one query over a full-size
    Realtime decoder ring, 32 query heads on 8 KV heads, a bool mask. The math fallback would read
    the ring in fp32 with the KV heads repeated, and bound the live streams whatever the kernels."""
    try:
        from torch.nn.attention import SDPBackend

        q = torch.zeros(1, 32, 1, 128, dtype=torch.bfloat16, device=device)  # [B, H, 1, hd]
        kv = torch.zeros(1, 8, 8192, 128, dtype=torch.bfloat16, device=device)  # [B, Hkv, S, hd]
        mask = torch.ones(1, 1, 1, 8192, dtype=torch.bool, device=device)  # [B, 1, 1, S]
        index = torch._fused_sdp_choice(q, kv, kv, mask, 0.0, False, enable_gqa=True)
        return SDPBackend(index).name
    except Exception as err:  # noqa: BLE001 (a private helper: information only)
        return f"unknown ({type(err).__name__}: {err})"


def run_copy(ctx: Context) -> None:
    timer = Timer(ctx.device)
    rows, dim = ctx.opts.rows, ctx.opts.dim
    same, t_same = copy_bandwidth(timer, rows * dim * 2, reps=ctx.opts.reps)
    big, t_big = copy_bandwidth(timer, ctx.opts.big_copy_bytes, reps=max(ctx.opts.reps // 3, 3))
    ctx.data.update(same_size_bps=same, same_size_shape=f"{rows}, {dim}", same_size_s=t_same, big_bps=big,
                    big_bytes=ctx.opts.big_copy_bytes, big_s=t_big)
    say(f"  copy [{rows}, {dim}] bf16 (read + write {2 * rows * dim * 2 / 1e6:.0f} MB): {same / 1e12:.3f} TB/s ({t_same * 1e6:.1f} µs)")
    say(f"  copy {ctx.opts.big_copy_bytes / 2**30:.2f} GiB: {big / 1e12:.3f} TB/s ({t_big * 1e3:.2f} ms)")


# name, title, run, least seconds worth starting it with, most seconds it may take (on a GPU)
SECTIONS = [
    Section("env", "environment and kernel build", run_env, 5.0, 120.0),
    Section("copy", "copy bandwidth", run_copy, 2.0, 20.0),
    Section("correctness", "every kernel vs float64 reference (outputs poisoned)", correctness.run, 5.0, 45.0),
    Section("ops", "op timings: voxkit / F.rms_norm / torch.compile / eager / Liger", opspeed.run, 10.0, 80.0),
    Section("train", "backbone training step, kernels off vs on", endtoend.run_train, 8.0, 40.0),
    Section("decode", "batch-1 decode, Mistral-7B shape", endtoend.run_decode, 25.0, 150.0),
    Section("streams", "live full-size Realtime streams per GPU", endtoend.run_streams, 40.0, 90.0),
]


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m voxkit.bench.kernels", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (the CPU smoke run)")
    ap.add_argument("--sections", default=",".join(SECTION_NAMES), help=f"comma-separated, from {', '.join(SECTION_NAMES)}")
    ap.add_argument("--out", default=None, help="write all results to this JSON file (rewritten after every section)")
    ap.add_argument("--budget", type=flags.number(0, above=True), default=None,
                    help="seconds for the whole run (default 275 on a GPU, 150 quick)")
    ap.add_argument("--seed", type=flags.whole(0, 2**63 - 1), default=None, help="random inputs (default: fresh, printed)")
    ap.add_argument("--rows", type=flags.whole(1), default=None, help="rows of the timed tensors (default 16384; quick 256)")
    ap.add_argument("--dim", type=flags.whole(1), default=None, help="width of the timed tensors (default 4096; quick 512)")
    ap.add_argument("--reps", type=flags.whole(1), default=None, help="timed calls per op (default 50; quick 3)")
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend of the ops section (default inductor; "
                    "'eager' on the CPU with --quick, where inductor's first build would take most of the run)")
    ap.add_argument("--decode-tokens", type=flags.whole(1), default=None, help="new tokens per voxkit decode (default 128; quick 8)")
    ap.add_argument("--decode-variants", default=None,
                    help=f"voxkit decoders, from {', '.join(endtoend.DECODE_VARIANTS)} (default all; quick: eager,eager-off,transformers)")
    ap.add_argument("--max-streams", type=flags.whole(1), default=None, help="most live streams tried (default 512; quick 4)")
    ap.add_argument("--stream-sizes", default="1,4,16,32,64,128,256,512",
                    help="stream counts tried in turn (up to what fits in memory, then refined between the last "
                         "real-time count and the first too slow one)")
    ap.add_argument("--no-stream-graphs", dest="stream_graphs", action="store_false",
                    help="step the streams eagerly even where sessions can record CUDA graphs")
    opts = ap.parse_args(argv)
    quick = opts.quick
    opts.device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = opts.device.startswith("cuda")
    wanted = [s.strip() for s in opts.sections.split(",") if s.strip()]
    aliases = {"correct": "correctness", "env": None}
    wanted = [aliases.get(s, s) for s in wanted]
    unknown = [s for s in wanted if s is not None and s not in SECTION_NAMES]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_NAMES)}")
    opts.selected = {"env", *(s for s in wanted if s)}
    defaults = dict(budget=150.0 if quick else 275.0, seed=secrets.randbelow(2**31), rows=256 if quick else 16384,
                    dim=512 if quick else 4096, reps=3 if quick else 50, decode_tokens=8 if quick else 128,
                    compile_backend="eager" if quick and not gpu else "inductor", max_streams=4 if quick else 512,
                    decode_variants="eager,eager-off,transformers" if quick else ",".join(endtoend.DECODE_VARIANTS))
    for key, value in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.decode_variants = [v.strip() for v in opts.decode_variants.split(",") if v.strip()]
    sizes = opts.stream_sizes
    try:
        opts.stream_sizes = sorted({flags.whole(1)(v.strip()) for v in sizes.split(",") if v.strip()})
    except argparse.ArgumentTypeError:
        ap.error(f"--stream-sizes takes comma-separated counts of at least 1, got {sizes!r}")
    if not opts.stream_sizes:
        ap.error(f"--stream-sizes names no count, got {sizes!r}")
    bad = [v for v in opts.decode_variants if v not in endtoend.DECODE_VARIANTS]
    if bad:
        ap.error(f"unknown decode variant(s) {', '.join(bad)}; choose from {', '.join(endtoend.DECODE_VARIANTS)}")
    opts.big_copy_bytes = 8 << 20 if quick else 1 << 30
    opts.decode_tokens_hf = 8 if quick else 32
    opts.decode_reps = 2 if quick else 3
    opts.decode_reps_hf = 1 if quick else 2
    opts.train_reps = 2 if quick else 5
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        device = torch.device(opts.device)
    except RuntimeError as error:
        print(f"voxkit.bench.kernels: --device {opts.device!r} is not a device ({error})", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("voxkit.bench.kernels: --device cuda, but torch sees no CUDA GPU here; the CPU smoke run is --device cpu --quick",
              file=sys.stderr)
        return 2
    budget = Budget(opts.budget, START if argv is None else time.monotonic())
    # a hang in native code (a kernel, a driver call) ends the run with every thread's stack
    with contextlib.suppress(Exception):  # stderr without a file descriptor (a captured test): no watchdog
        faulthandler.dump_traceback_later(opts.budget + 60, exit=True, file=sys.__stderr__)
    try:
        machine = describe(device, PEERS)  # the first line, as every bench script's (docs/benchmarks.md)
        say(machine)
        say(f"voxkit.bench.kernels: device {device}, budget {opts.budget:.0f} s, seed {opts.seed}, sections "
            f"{', '.join(s.name for s in SECTIONS if s.name in opts.selected)}{', quick' if opts.quick else ''}"
            f"{', JSON to ' + opts.out if opts.out else ''}")
        results: dict[str, Any] = {"meta": {k: v for k, v in vars(opts).items() if k != "selected"}
                                   | {"selected": sorted(opts.selected), "machine": machine}}
        if not opts.quick and device.type == "cpu":
            say("  note: full sizes on a CPU take far longer than the budget; use --quick")
        run_sections(SECTIONS, opts.selected, budget, opts, device, results)
        results["goals"] = report.goals(results)
        say(f"\n=== goals (t = {budget.elapsed():.0f} s) ===")
        for g in results["goals"]:
            say(f"{g['status']} {g['goal']}: {g['detail']}")
        results["markdown"] = report.markdown(results)
        say("\n=== markdown for docs/benchmarks.md ===\n")
        say(results["markdown"])
        results["meta"]["seconds"] = round(budget.elapsed(), 1)
        write_json(opts.out, results)
        say(f"done in {budget.elapsed():.0f} s" + (f"; results in {opts.out}" if opts.out else ""))
        corr = results.get("correctness", {})
        return 1 if corr.get("checked") and not corr.get("passed") else 0
    finally:
        faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    sys.exit(main())
