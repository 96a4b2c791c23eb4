"""Next-token sampling cost: voxkit's ``sample_next`` next to transformers' sampling, same logits.

transformers samples as its ``generate(do_sample=True)`` does: the logits processors
(``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``: top-p sorts the whole
vocabulary), then ``softmax`` and ``torch.multinomial``. voxkit draws from the cumulative sum with
one uniform number per row, and on a CPU looks for the nucleus among the most likely few hundred
tokens before it sorts everything (lm/sampling.py). Both get the same float32 logits [B, V].

Two kinds of rows: "peaked" (Zipf-like, log p ~ -1.3 log rank, shuffled: a language model's shape;
the nucleus holds tens to hundreds of tokens) and "flat" (small random logits: the nucleus holds most
of the vocabulary, voxkit's worst case, where it falls back to the full sort). Medians of
``--repeats`` calls after a warm-up; the two libraries alternate call by call.

Why: a small model's decode step on a CPU takes a few milliseconds, and a Mistral vocabulary has
131,072 tokens: a draw that touches every token several times (sort, exponential variates) can cost
as much as the step itself (TTS draws a semantic code per 80 ms frame with top-p 0.95 by default).

    python scripts/bench_sampling.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from voxkit.bench import flags
from voxkit.bench.machine import describe, library_version
from voxkit.lm.sampling import SamplingConfig, sample_next


def _hf_sample(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """transformers' sampling path for logits [B, V] -> [B]."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList([TemperatureLogitsWarper(config.temperature)])
    if config.top_k is not None:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p is not None:
        warpers.append(TopPLogitsWarper(config.top_p))
    scores = warpers(None, logits.clone())  # [B, V] (the warpers may write into their input)
    probs = scores.softmax(dim=-1)  # [B, V]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # [B]


def _rows(kind: str, batch: int, vocab: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "flat":
        return 0.01 * torch.randn(batch, vocab, generator=gen)  # [B, V]
    base = -1.3 * torch.arange(1, vocab + 1, dtype=torch.float32).log()  # [V]
    perm = torch.argsort(torch.rand(batch, vocab, generator=gen), dim=-1)  # [B, V]
    return base[perm] + 0.1 * torch.randn(batch, vocab, generator=gen)  # [B, V]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=flags.whole(1), default=1)
    parser.add_argument("--repeats", type=flags.whole(1), default=30, help="timed draws after one warm-up (median)")
    parser.add_argument("--vocab", type=flags.whole(2), nargs="+", default=[8194, 131072], help="vocabulary sizes")
    parser.add_argument("--batch", type=flags.whole(1), nargs="+", default=[1, 8], help="rows drawn at once")
    args = parser.parse_args()
    if not library_version("transformers"):  # the peer of every row
        parser.error("needs transformers, the peer of every row: pip install transformers")
    torch.set_num_threads(args.threads)
    configs = {
        "T 0.8": SamplingConfig(temperature=0.8),
        "T 0.8, top-p 0.95": SamplingConfig(temperature=0.8, top_p=0.95),
        "T 0.8, top-k 50": SamplingConfig(temperature=0.8, top_k=50),
        "T 0.8, top-k 50, top-p 0.9": SamplingConfig(temperature=0.8, top_k=50, top_p=0.9),
    }
    print(describe("cpu", ("transformers",)))
    print(f"ms per draw of B tokens from the same logits, median of {args.repeats}\n")
    print("| rows | V | B | sampling | voxkit ms | transformers ms | ratio |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for kind in ("peaked", "flat"):
        for vocab in args.vocab:
            for batch in args.batch:
                logits = _rows(kind, batch, vocab)
                for name, config in configs.items():
                    if kind == "flat" and config.top_p is None:
                        continue  # without top-p the rows' shape does not change the work
                    gen_v, gen_h = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
                    sample_next(logits, config, gen_v), _hf_sample(logits, config, gen_h)  # warm-up
                    ours: list[float] = []
                    theirs: list[float] = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        sample_next(logits, config, gen_v)
                        t1 = time.perf_counter()
                        _hf_sample(logits, config, gen_h)
                        t2 = time.perf_counter()
                        ours.append(t1 - t0)
                        theirs.append(t2 - t1)
                    a, b = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
                    print(f"| {kind} | {vocab} | {batch} | {name} | {a:.3f} | {b:.3f} | {b / a:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
