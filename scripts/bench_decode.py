"""Batch-1 greedy decode throughput: voxkit's Generator vs transformers' generate(), same weights.

A random transformers ``MistralForCausalLM`` is built from a small config, and its weights are
converted into a voxkit :class:`Transformer` (``voxkit.lm.convert``: renamed keys, wq/wk rows
permuted from rotate-half to interleaved RoPE). Both libraries then greedily decode the same prompt;
the script first checks that they produce the same tokens, then times them. Each cell is the median
of several timed repeats after one untimed warm-up.

    python scripts/bench_decode.py                     # fp32 on CPU (+ bf16 on CUDA if present)
    python scripts/bench_decode.py --threads 1 --repeats 3
    python scripts/bench_decode.py --no-cpu --size 7b --compile   # a GPU: Mistral-7B shape, + compiled step
    python scripts/bench_decode.py --no-cpu --size 7b --graphs    # + the step replayed as a CUDA graph
    python scripts/bench_decode.py --no-cpu --size 7b --compile --graphs   # + the compiled step as a CUDA graph
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from voxkit.bench import flags, models
from voxkit.bench.machine import describe, library_version
from voxkit.lm import Transformer
from voxkit.lm.generate import Generator
from voxkit.timing import median_times

SIZES = models.DECODE_SIZES


def build_hf(sliding_window: int | None, dtype: torch.dtype, device: torch.device, size: str = "small"):  # -> MistralForCausalLM
    return models.build_hf_mistral(size, dtype, device, seed=0, sliding_window=sliding_window)


build_voxkit_from = models.voxkit_from_hf
hf_decode = models.hf_generate


def linear_floor(model: Transformer, n: int) -> Callable[[], object]:
    """n tokens' worth of the model's matrix-vector products alone, as one callable.

    Batch-1 decode reads every weight once per token; this is the time that no decode loop can
    beat without changing the weights (a roofline measured on the same machine, same run).
    """
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(1, w.shape[1], device=w.device, dtype=w.dtype) for w in weights}

    def run() -> None:
        with torch.inference_mode():
            for _ in range(n):
                for w in weights:
                    torch.nn.functional.linear(inputs[w.shape[1]], w)

    return run


def bench(
    device: torch.device, dtype: torch.dtype, window: int | None, n: int, prompt_len: int, repeats: int, size: str, compile: bool,
    graphs: bool = False,
) -> dict:
    hf = build_hf(window, dtype, device, size)
    ours = build_voxkit_from(hf)
    prompt = torch.randint(100, SIZES[size]["vocab_size"], (1, prompt_len), generator=torch.Generator().manual_seed(1)).to(device)
    gen = Generator(ours)
    ours_tokens = gen.generate([prompt[0].tolist()], n)[0]
    hf_tokens = hf_decode(hf, prompt, n)
    agree = next((i for i, (a, b) in enumerate(zip(ours_tokens, hf_tokens, strict=True)) if a != b), n)
    fns = {
        "hf": lambda: hf_decode(hf, prompt, n),
        "ours": lambda: gen.generate([prompt[0].tolist()], n),
        "floor": linear_floor(ours, n),
    }
    result: dict = {"agree": agree, "compiled_agree": None, "compile_s": float("nan"), "graphs_agree": None, "capture_s": float("nan")}
    if compile:
        compiled = Generator(ours, compile=True)
        start = time.perf_counter()
        compiled_tokens = compiled.generate([prompt[0].tolist()], n)[0]  # the first call compiles
        result["compile_s"] = time.perf_counter() - start
        result["compiled_agree"] = next((i for i, (a, b) in enumerate(zip(compiled_tokens, ours_tokens, strict=True)) if a != b), n)
        fns["compiled"] = lambda: compiled.generate([prompt[0].tolist()], n)
    if graphs and device.type == "cuda":
        # The step as a CUDA graph (of the compiled step with --compile); the generator keeps the
        # recorded step and its caches, so the timed calls replay the graph the first call recorded.
        graphed = Generator(ours, compile=compile, graphs=True)
        start = time.perf_counter()
        graph_tokens = graphed.generate([prompt[0].tolist()], n)[0]
        result["capture_s"] = time.perf_counter() - start
        result["graphs_agree"] = next((i for i, (a, b) in enumerate(zip(graph_tokens, ours_tokens, strict=True)) if a != b), n)
        fns["graphs"] = lambda: graphed.generate([prompt[0].tolist()], n)
    t = median_times(fns, repeats, device)
    return {**result, **{name: n / seconds for name, seconds in t.items()}}


def _windows(text: str) -> list[int | None]:
    """--windows: comma-separated window lengths of at least 1, or 'none' (full attention)."""
    parts = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"names no window, got {text!r} (give e.g. 4096,none)")
    try:
        return [None if w == "none" else flags.whole(1)(w) for w in parts]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"takes window lengths of at least 1 or 'none', comma-separated, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=flags.whole(1), default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--new-tokens", type=flags.whole(1), default=256)
    parser.add_argument("--prompt-len", type=flags.whole(1), default=16)
    parser.add_argument("--repeats", type=flags.whole(1), default=5, help="timed rounds after one warm-up (median)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA bf16 rows")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU fp32 rows")
    parser.add_argument("--compile", action="store_true", help="also time voxkit's torch.compile'd decode step")
    parser.add_argument("--graphs", action="store_true",
                        help="also time the decode step replayed as a CUDA graph (CUDA rows; of the compiled step with --compile)")
    parser.add_argument("--windows", type=_windows, default="4096,none",
                        help="sliding windows to run, comma-separated ('none': full attention)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: dim 512, vocab 32768; tiny: dim 256, vocab 4096; 7b: Mistral-7B's shape")
    opts = parser.parse_args()
    import os

    if not library_version("transformers"):  # the peer every row is measured against
        parser.error("needs transformers, the peer of every row: pip install transformers")
    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    runs = [] if opts.no_cpu else [(torch.device("cpu"), torch.float32)]
    if torch.cuda.is_available() and not opts.no_cuda:
        runs.append((torch.device("cuda"), torch.bfloat16))
    if not runs:  # an empty table would look like a finished run
        parser.error("nothing to run: --no-cpu" + (" with --no-cuda" if opts.no_cuda else ", and torch sees no CUDA GPU here"))
    print(describe(runs[-1][0], ("transformers",)))
    c = SIZES[opts.size]
    print(f"model ({opts.size}): {c['num_hidden_layers']} layers, dim {c['hidden_size']}, "
          f"{c['num_attention_heads']} heads / {c['num_key_value_heads']} kv heads "
          f"(head_dim {c['head_dim']}), hidden {c['intermediate_size']}, vocab {c['vocab_size']}; "
          f"prompt {opts.prompt_len}, {opts.new_tokens} new tokens, batch 1, greedy; median of {opts.repeats}")
    print()
    extra = " voxkit compiled tok/s | compiled = eager tokens | compile s |" if opts.compile else ""
    if opts.graphs:
        column = "voxkit compiled + CUDA graphs tok/s" if opts.compile else "voxkit CUDA graphs tok/s"
        extra += f" {column} | graphs = eager tokens | first call s |"
    print("| device | dtype | sliding window | transformers tok/s | voxkit tok/s | speed-up | same greedy tokens "
          f"| weights-read floor tok/s |{extra}")
    print("|---|---|---|---:|---:|---:|---|---:|" + ("---:|---|---:|" if opts.compile else "") + ("---:|---|---:|" if opts.graphs else ""))
    windows = opts.windows
    for device, dtype in runs:
        for window in windows:
            r = bench(device, dtype, window, opts.new_tokens, opts.prompt_len, opts.repeats, opts.size, opts.compile, opts.graphs)
            same = "all" if r["agree"] == opts.new_tokens else f"first {r['agree']}"
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
            row = (f"| {name} | {str(dtype).removeprefix('torch.')} | {window} | {r['hf']:.1f} | {r['ours']:.1f} "
                   f"| {r['ours'] / r['hf']:.2f}x | {same} | {r['floor']:.1f} |")
            if opts.compile:
                c_same = "all" if r["compiled_agree"] == opts.new_tokens else f"first {r['compiled_agree']}"
                row += f" {r['compiled']:.1f} | {c_same} | {r['compile_s']:.0f} |"
            if opts.graphs and "graphs" in r:
                g_same = "all" if r["graphs_agree"] == opts.new_tokens else f"first {r['graphs_agree']}"
                row += f" {r['graphs']:.1f} | {g_same} | {r['capture_s']:.1f} |"
            elif opts.graphs:
                row += " - | - | - |"  # CUDA graphs need a GPU
            print(row, flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the next model (a 7B one: 14.5 GB) starts from a clean cache


if __name__ == "__main__":
    main()
