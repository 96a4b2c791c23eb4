"""Distil the causal, rotary student of Whisper tiny.en's encoder towards the original, encoder alone.

    python scripts/distill_encoder.py --train data/probe_en/train.jsonl --minutes 25 --layers 4 --out runs/distill/final
    python scripts/probe_encoder.py ... --student runs/distill/final/encoder.safetensors   # what a decoder can read now

Why: scripts/probe_encoder.py shows that the student, as converted, has lost most of what makes
Whisper's states readable on real speech. The recogniser's recipe distils only the last layer, inside
whole recogniser steps. This script isolates the encoder (no decoder, the teacher's states computed
once) so that the distillation itself can be measured on a CPU: how much of the loss a given amount
of synthetic audio recovers, and whether matching every layer helps more than matching the last.

Targets: the teacher's output (after its final norm) and, with ``--layers all``, its residual stream
after every layer minus the absolute position table that Whisper added at its input. That table is
a term the student has no way to make (it has no absolute positions), and it passes through every
residual connection unchanged, so removing it leaves exactly what the student can learn. Loss: the
squared error relative to each target's energy, averaged over the matched layers, on real frames
only (packs are padded with silence at the end of a batch).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_encoder import build_arms, layer_outputs, load_rows, pack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", nargs="+", required=True)
    p.add_argument("--train-hours", type=float, default=None)
    p.add_argument("--minutes", type=float, default=25.0, help="training time, teacher states not counted")
    p.add_argument("--layers", choices=("4", "all"), default="4", help="match the output only, or every layer too")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=2, help="30 s packs per step")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the student (faster on CPUs with bf16 instructions)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)

    from safetensors.torch import save_file

    from voxkit.asr.evaluate import load_waves
    from voxkit.asr.features import LogMel
    from voxkit.asr.whisper import MEL_FLOOR

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = load_rows(a.train, a.train_hours)
    packs = [audio for audio, _ in pack(load_waves(rows, progress=False))]
    arms = build_arms(["whisper", "causal-L4"])
    teacher, student = arms["whisper"][0], arms["causal-L4"][0]
    n_layers = len(student.transformer.layers)
    inner = list(range(1, n_layers)) if a.layers == "all" else []
    mel_of = LogMel(n_mels=arms["whisper"][1])
    mels = [mel_of(x[None])[0] for x in packs]  # [80, 2 F] each

    t0 = time.perf_counter()
    targets: list[dict[int, torch.Tensor]] = []
    table = teacher.position_table  # [1500, D]
    captured, hooks = layer_outputs(teacher, inner)
    with torch.inference_mode():
        for mel in mels:
            out = teacher(mel[None])[0]  # [F, D]
            F_ = out.shape[0]
            t = {n_layers: out.to(torch.float16)}
            for layer in inner:
                t[layer] = (captured[layer][0, :F_] - table[:F_]).to(torch.float16)  # [F, D] positions removed
            targets.append(t)
    for h in hooks:
        h.remove()
    print(f"{len(rows)} utterances in {len(packs)} packs; teacher states in {time.perf_counter() - t0:.0f} s", flush=True)

    student.train()
    student.requires_grad_(True)
    captured, hooks = layer_outputs(student, inner)
    opt = torch.optim.AdamW(student.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    rng = random.Random(0)
    order: list[int] = []
    log: list[dict] = []
    step, start = 0, time.perf_counter()
    budget = a.minutes * 60
    while time.perf_counter() - start < budget:
        if len(order) < a.batch:
            order += rng.sample(range(len(mels)), len(mels))
        idx, order = order[: a.batch], order[a.batch :]
        T = max(mels[i].shape[1] for i in idx)
        mel = torch.full((len(idx), mels[idx[0]].shape[0], T), MEL_FLOOR)  # [B, 80, T]
        for j, i in enumerate(idx):
            mel[j, :, : mels[i].shape[1]] = mels[i]
        frac = (time.perf_counter() - start) / budget
        lr = a.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp):
            out = student(mel)  # [B, T / 2, D]
        losses = {}
        for layer in [*inner, n_layers]:
            states = out if layer == n_layers else captured[layer]
            num, den = 0.0, 0.0
            for j, i in enumerate(idx):
                target = targets[i][layer].float()  # [F, D]
                num = num + (states[j, : target.shape[0]].float() - target).pow(2).sum()
                den = den + target.pow(2).sum()
            losses[layer] = num / den
        loss = sum(losses.values()) / len(losses)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == 1:
            row = {"step": step, "seconds": round(time.perf_counter() - start), "lr": lr,
                   **{f"L{k}": round(float(v.detach()), 4) for k, v in losses.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
    for h in hooks:
        h.remove()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in student.state_dict().items()}, str(out_dir / "encoder.safetensors"))
    seen = step * a.batch * 30 / 3600
    (out_dir / "log.json").write_text(json.dumps({"args": vars(a), "steps": step, "hours_seen_at_most": seen, "log": log}, indent=1))
    print(f"{step} steps (at most {seen:.1f} h of audio) -> {out_dir / 'encoder.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
