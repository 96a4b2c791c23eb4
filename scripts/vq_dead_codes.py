"""How fast the codec's semantic VQ spreads over its codes, per dead-code threshold (a toy).

Why: vector-quantize-pytorch replaces a code once its EMA use falls under
``threshold_ema_dead_code``, an absolute count. A code starts at 1 and an unused one decays by
``decay`` per step, so the threshold sets how many steps pass before an unused code is replaced:
log(threshold) / log(decay). A GPU run of a few hundred seconds has a few hundred to a thousand
steps, so that delay decides whether replacement happens in the run at all (docs/codec.md).

The toy feeds the codec's VQ (8192 x 256, EMA 0.99) with vectors like an encoder's early output:
a scale that grows from near zero over the first 300 steps, around centres that move over the
first 1000, ``--vectors`` per step (the small recipe's batch 64 x 24 frames = 1536). It prints the
perplexity of the codes given to fresh vectors at a few steps. It does not train an encoder, so it
shows the library's replacement dynamics, not a codec's final usage.

    python scripts/vq_dead_codes.py --thresholds 0.001,0.05,0.2     # ~6 min per threshold on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def batch(centres: torch.Tensor, step: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """[1, n, D] vectors at ``step``: scale and centres drift as an encoder's output does early on."""
    scale = 0.05 + 0.95 * min(1.0, step / 300)
    drift = min(1.0, step / 1000)
    idx = torch.randint(0, centres.shape[0], (n,), generator=generator)  # [n]
    moved = (idx + 7) % centres.shape[0]  # [n]
    c = centres[idx] * (1 - drift) + centres[moved] * drift  # [n, D]
    return (scale * (c + 0.3 * torch.randn(c.shape, generator=generator)))[None]  # [1, n, D]


def perplexity(indices: torch.Tensor, size: int) -> float:
    p = torch.bincount(indices.flatten(), minlength=size).double()  # [K]
    p = p[p > 0] / p.sum()
    return math.exp(-float((p * p.log()).sum()))


def run(threshold: float, steps: int, vectors: int, report: list[int]) -> list[tuple[int, float]]:
    from vector_quantize_pytorch import VectorQuantize

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    dim, size = 256, 8192
    centres = torch.randn(20000, dim, generator=g)  # [C, D]
    vq = VectorQuantize(dim=dim, codebook_size=size, decay=0.99, commitment_weight=1.0,
                        threshold_ema_dead_code=threshold, kmeans_init=False)
    out = []
    for step in range(1, steps + 1):
        vq.train()
        with torch.no_grad():
            vq(batch(centres, step, vectors, g))
        if step in report:
            vq.eval()
            with torch.no_grad():
                _, ind, _ = vq(batch(centres, step, 4 * vectors, g))  # ind: [1, 4n]
            out.append((step, perplexity(ind, size)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--thresholds", default="0.001,0.05,0.2")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--vectors", type=int, default=1536, help="vectors per step (batch x frames)")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    report = [s for s in (100, 300, 600, 900, 1200, 2000, 3000) if s <= a.steps]
    print("| threshold | steps before an unused code is replaced | " + " | ".join(f"step {s}" for s in report) + " |")
    print("|---:|---:|" + "---:|" * len(report))
    for threshold in (float(t) for t in a.thresholds.split(",")):
        t0 = time.perf_counter()
        rows = run(threshold, a.steps, a.vectors, report)
        delay = math.log(threshold) / math.log(0.99)
        print(f"| {threshold:g} | {delay:.0f} | " + " | ".join(f"{v:.0f}" for _, v in rows) + f" |  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
