"""What the kernels change end to end: a backbone training step, batch-1 decode, live streams.

Each is measured with voxkit's kernels on and with ``VOXKIT_KERNELS=off`` (the references) in the
same run, on random weights at published shapes (:mod:`voxkit.bench.models`).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from voxkit.bench.harness import Context, free_memory, kernels, say
from voxkit.bench.timing import Timer, copy_bandwidth
from voxkit.ops import registry

STEP_BUDGET_S = 0.080  # one 80 ms step of audio per step: slower than this falls behind


def active_kernels(device_type: str) -> list[str]:
    """Ops that dispatch to an implementation other than the reference on this device type."""
    return [f"{name}:{active}" for name, active, _ in registry.describe(device_type) if active != registry.REFERENCE]


# ----------------------------------------------------------------------------- training step


def run_train(ctx: Context) -> None:
    opts, device = ctx.opts, ctx.device
    from voxkit.bench import models
    from voxkit.lm import Transformer

    timer = Timer(device)
    args = models.train_args(opts.quick)
    batch, seq = (2, 32) if opts.quick else (2, 2048)
    model = models.random_module(lambda: Transformer(args), device, torch.float32, opts.seed).train()
    for p in model.parameters():
        p.requires_grad_(True)
    gen = torch.Generator(device=device).manual_seed(opts.seed)
    tokens = torch.randint(0, args.vocab_size, (batch, seq + 1), generator=gen, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    ctx.data.update(model=f"{args.n_layers} layers, dim {args.dim}, hidden {args.hidden_dim}, {args.n_heads}/{args.n_kv_heads} heads, "
                    f"vocab {args.vocab_size} ({n_params / 1e9:.2f} B parameters)", tokens=batch * seq, rows=[])
    kernels_on = active_kernels(device.type)
    ctx.data["kernels_on"] = kernels_on
    say(f"  model: {ctx.data['model']}; batch {batch} x {seq} tokens; forward + backward (no optimizer), median of "
        f"{opts.train_reps}; kernels on = {', '.join(kernels_on) or 'none registered: the same path as off'}")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if ctx.cuda else contextlib.nullcontext()
    setups = [("bf16 autocast, fp32 weights (the trainer's)", amp), ("bf16 weights", contextlib.nullcontext())]
    if not ctx.cuda:
        setups = [("fp32 (CPU)", contextlib.nullcontext())]
    for label, context in setups:
        if label == "bf16 weights":
            for p in model.parameters():  # parameters only: buffers (RoPE frequencies) stay float32
                p.data = p.data.to(torch.bfloat16)

        def step(context: Any = context) -> None:
            for p in model.parameters():
                p.grad = None
            with context:
                logits = model(tokens[:, :-1])  # [B, T, V]
                loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
            loss.backward()

        row: dict[str, Any] = {"setup": label}
        for on in (False, True):
            if not ctx.has(3.0, f"training step, {label}, kernels {'on' if on else 'off'}"):
                continue
            with kernels(on):
                t = statistics.median(timer.wall(step, opts.train_reps, warmup=2))
            row["on_s" if on else "off_s"] = t
        if "on_s" in row and "off_s" in row:
            row["speedup"] = row["off_s"] / row["on_s"]
            say(f"  {label:45s} kernels off {row['off_s'] * 1e3:8.1f} ms  on {row['on_s'] * 1e3:8.1f} ms  "
                f"x{row['speedup']:.3f}  ({batch * seq / row['on_s']:.0f} tokens/s with kernels)")
        ctx.data["rows"].append(row)
    for p in model.parameters():
        p.grad = None


# ----------------------------------------------------------------------------- batch-1 decode

# name -> (Generator keyword arguments, kernels on, seconds it may need on a GPU); "transformers" is the peer
# In the order they run: what the goals need first (the fastest voxkit decode and the peer),
# the comparisons after, while the budget lasts.
DECODE_VARIANTS: dict[str, tuple[dict[str, Any], bool, float]] = {
    "eager": ({}, True, 15.0),
    "graphs": ({"graphs": True}, True, 10.0),
    "graphs+compile": ({"graphs": True, "compile": True}, True, 50.0),
    "transformers": ({}, True, 12.0),
    "eager-off": ({}, False, 15.0),
    "compile": ({"compile": True}, True, 50.0),
    "compile-off": ({"compile": True}, False, 50.0),
}


def _generate_one(generator: Any, prompt: list[int], n: int) -> list[int]:
    return generator.generate([prompt], n)[0]


def run_decode(ctx: Context) -> None:
    opts, device = ctx.opts, ctx.device
    from voxkit.bench import models
    from voxkit.lm import Transformer
    from voxkit.lm.generate import Generator

    timer = Timer(device)
    size = "micro" if opts.quick else "7b"
    dtype = torch.bfloat16 if ctx.cuda else torch.float32
    try:
        hf = models.build_hf_mistral(size, dtype, device, opts.seed)
        ours = models.voxkit_from_hf(hf)
    except ImportError as err:  # transformers is optional: voxkit's own decoders are still measured
        say(f"  transformers not importable ({err}): voxkit's model is built directly, without the peer")
        ctx.data["transformers_error"] = str(err)
        hf, ours = None, models.random_module(lambda: Transformer(models.decode_args(size)), device, dtype, opts.seed)
    weights = models.param_bytes(ours, None if ours.args.tied_embeddings else "tok_embeddings")
    bandwidth = ctx.results.get("copy", {}).get("big_bps") or copy_bandwidth(timer, opts.big_copy_bytes)[0]
    bound = bandwidth / weights
    n, n_hf = opts.decode_tokens, min(opts.decode_tokens, opts.decode_tokens_hf)
    prompt = torch.randint(100, ours.args.vocab_size, (1, 16), generator=torch.Generator().manual_seed(opts.seed)).to(device)
    prompt_ids = prompt[0].tolist()
    ctx.data.update(model=size, dtype=str(dtype).removeprefix("torch."), weight_bytes=weights, copy_bps=bandwidth,
                    bound_tok_s=bound, new_tokens=n, rows=[])
    say(f"  {size} shape, {str(dtype).removeprefix('torch.')}, random weights; weights read per token {weights / 1e9:.2f} GB "
        f"(all but the embedding table); bound = {bandwidth / 1e12:.2f} TB/s copy / weights = {bound:.1f} tokens/s")
    say(f"  prompt 16 tokens, greedy; voxkit {n} new tokens, transformers {n_hf}; tokens/s = new tokens / time of the "
        f"whole generate call (prefill included), median of {opts.decode_reps} after a first call (compiles included)")
    reference: list[int] | None = None  # the first voxkit decoder's tokens: the others are compared with them
    reference_label = ""
    for name in opts.decode_variants:
        kwargs, on, need = DECODE_VARIANTS[name]
        if name == "transformers":
            label, new = "transformers generate (eager, dynamic cache)", n_hf
        else:
            options = ", ".join(f"{k}=True" for k in kwargs) if kwargs else "eager"
            label, new = f"voxkit Generator({options}) kernels {'on' if on else 'off'}", n
        if not ctx.has(need if ctx.cuda else 1.0, label):
            continue
        row: dict[str, Any] = {"variant": name, "label": label, "new_tokens": new}
        ctx.data["rows"].append(row)
        if name == "transformers" and hf is None:
            row["error"] = f"transformers not importable: {ctx.data.get('transformers_error')}"
            continue
        generator = None
        try:
            with kernels(on):
                if name == "transformers":
                    decode = functools.partial(models.hf_generate, hf, prompt, new)
                else:
                    if kwargs:
                        torch._dynamo.reset()  # a step compiled under the other kernel setting must not be reused
                    try:
                        generator = Generator(ours, **kwargs)
                    except TypeError as err:
                        row["error"] = f"not available in this voxkit: {err}"
                        say(f"  {label}: not available ({err})")
                        continue
                    decode = functools.partial(_generate_one, generator, prompt_ids, new)
                start = time.perf_counter()
                tokens = decode()
                if ctx.cuda:
                    torch.cuda.synchronize(device)
                first = time.perf_counter() - start
                times = timer.wall(decode, opts.decode_reps_hf if name == "transformers" else opts.decode_reps, warmup=0)
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
            say(f"  {label}: failed: {type(err).__name__}: {str(err)[:400]}")
            continue
        finally:
            generator = decode = None
        if reference is None and name != "transformers":
            reference, reference_label = tokens, label
        row.update(tok_s=new / statistics.median(times), first_call_s=first)
        row["of_bound"] = row["tok_s"] / bound
        agree = ""
        if reference is not None and tokens is not reference:
            row["same_tokens"] = models.agreement(tokens, reference)
            agree = f"; first {row['same_tokens']}/{new} tokens equal those of {reference_label}"
        say(f"  {label:58s} {row['tok_s']:8.1f} tokens/s = {100 * row['of_bound']:5.1f} % of bound; first call {first:.1f} s{agree}")
    hf = ours = None  # the 7B shape's weights (shared by both models but wq, wk): gone before the next section
    torch._dynamo.reset()  # compiled steps hold the model too
    free_memory(device)


# ----------------------------------------------------------------------------- live Realtime streams


def run_streams(ctx: Context) -> None:
    opts, device = ctx.opts, ctx.device
    from voxkit.asr.model import RealtimeRecognizer
    from voxkit.bench import models
    from voxkit.lm.fusion import fuse_projections

    args = models.realtime_args(opts.quick)
    dtype = torch.bfloat16 if ctx.cuda else torch.float32
    model = models.random_module(lambda: RealtimeRecognizer(args), device, dtype, opts.seed)
    fuse_projections(model)  # as load_bundle does: what a server runs
    tokenizer = models.realtime_tokenizer(opts.quick)
    state = model.init_state(1)
    per_stream = models.tensor_bytes(state)
    del state
    weights = models.param_bytes(model)
    if ctx.cuda:
        free_memory(device)
        free, total = torch.cuda.mem_get_info(device)
        reserve = max(2 << 30, int(0.04 * total))  # activations of one step, allocator slack
        fit = max(int((free - reserve) // per_stream), 0)
    else:
        free = total = None
        fit = opts.max_streams
    dec = args.decoder
    ctx.data.update(weights_bytes=weights, state_bytes_per_stream=per_stream, fit_in_memory=fit, rows=[],
                    decoder_capacity=dec.max_window, encoder_window=args.encoder.max_window)
    say(f"  {'tiny' if opts.quick else 'full-size Voxtral-Realtime shape'}, {str(dtype).removeprefix('torch.')}, random weights "
        f"{weights / 1e9:.2f} GB; per stream: caches {per_stream / 1e9:.3f} GB (decoder ring {dec.max_window} steps, "
        f"encoder ring {args.encoder.max_window} frames)")
    if ctx.cuda:
        say(f"  memory: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB after the weights -> {fit} streams fit "
            f"(keeping {reserve / 2**30:.1f} GiB for activations)")
    warmup, steps = (1, 3) if opts.quick else (3, 10)
    graphs = ctx.cuda and opts.stream_graphs
    ctx.data["graphs"] = graphs
    if graphs:
        say("  sessions record their steps as CUDA graphs (StreamingSession(graphs=True)) when voxkit offers it")
    sizes = [n for n in opts.stream_sizes if n <= min(fit, opts.max_streams)]
    if 0 < fit <= opts.max_streams and fit not in sizes:
        sizes.append(fit)
    say(f"  lock-step streams, one 80 ms step each per step, median and p95 of {steps} steps after {warmup}; real-time: p95 < 80 ms")
    say(f"    {'streams':>7s} {'on ms':>8s} {'on p95':>8s} {'off ms':>8s} {'off p95':>8s} {'real-time (on/off)':>19s}")
    best = {True: 0, False: 0}
    slowest = {True: 0, False: 0}  # the fewest streams found too slow (0: none yet)

    def measure(n: int, settings: tuple[bool, ...]) -> dict[str, Any] | None:
        """One row (None when out of time); sets row["error"] on running out of memory."""
        nonlocal graphs
        need = 2 * ((warmup + steps) * max(0.02, 0.001 * n) + 0.5 + 0.005 * n + (3.0 if graphs else 0.0)) if ctx.cuda else 0.5
        if not ctx.has(need * len(settings) / 2, f"{n} streams"):
            return None
        row: dict[str, Any] = {"streams": n}
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        try:
            for on in settings:
                with kernels(on):
                    try:
                        times = sorted(models.step_times(model, tokenizer, n, warmup, steps, device, graphs=graphs))
                    except TypeError as err:
                        if not graphs:
                            raise
                        graphs = ctx.data["graphs"] = False
                        ctx.data["graphs_error"] = str(err)
                        say(f"  StreamingSession has no graphs option ({err}): eager steps")
                        times = sorted(models.step_times(model, tokenizer, n, warmup, steps, device))
                key = "on" if on else "off"
                row[f"{key}_ms"] = 1e3 * statistics.median(times)
                row[f"{key}_p95_ms"] = 1e3 * times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                row[f"{key}_realtime"] = row[f"{key}_p95_ms"] < 1e3 * STEP_BUDGET_S
                if row[f"{key}_realtime"]:
                    best[on] = max(best[on], n)
                elif not slowest[on] or n < slowest[on]:
                    slowest[on] = n
                free_memory(device)
        except torch.OutOfMemoryError as err:
            row["error"] = f"out of memory: {str(err)[:200]}"
        except Exception as err:  # noqa: BLE001 (a failed capture, say: the rows measured so far stand)
            row["error"] = f"{type(err).__name__}: {str(err)[:200]}"
        # the summary after every row: a later failure or the time limit keeps what was measured
        ctx.data["max_realtime_on"], ctx.data["max_realtime_off"] = best[True], best[False]
        if ctx.cuda:
            row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        ctx.data["rows"].append(row)
        cells = []
        for key in ("on", "off"):
            cells += [f"{row[f'{key}_ms']:8.2f}", f"{row[f'{key}_p95_ms']:8.2f}"] if f"{key}_ms" in row else [f"{'-':>8s}"] * 2
        verdict = "/".join(("yes" if row[f"{k}_realtime"] else "no") if f"{k}_realtime" in row else "-" for k in ("on", "off"))
        say(f"    {n:7d} {' '.join(cells)} {verdict:>19s}" + (f"  {row['error'][:80]}" if "error" in row else ""))
        free_memory(device)
        return row

    for n in sizes:
        row = measure(n, (True, False))
        if row is None or "error" in row:
            break
        if not row["on_realtime"] and not row["off_realtime"]:
            break
    # refine the count with kernels between the last real-time size and the first too slow one
    for _ in range(3):
        low, high = best[True], slowest[True]
        if not high or high - low <= max(1, low // 16):
            break
        row = measure((low + high) // 2, (True,))
        if row is None or "error" in row:
            break
    ctx.data["max_realtime_on"] = best[True]
    ctx.data["max_realtime_off"] = best[False]
    tested = max((r["streams"] for r in ctx.data["rows"]), default=0)
    ctx.data["limited_by"] = "step time" if slowest[True] else "memory" if best[True] >= fit else "the sizes tried"
    say(f"  live streams kept real-time: {best[True]} with kernels, {best[False]} without (tested up to {tested}; "
        f"{fit} fit in memory)")
    model = None  # 9 GB at full size
    free_memory(device)
