"""What a decoder can still read from Whisper's encoder once it is made to stream: a frozen-feature probe.

    python scripts/probe_encoder.py --train data/probe_en/train.jsonl data/flite_train/train.jsonl \
        --eval espeak=data/eval23_en/test.jsonl piper=data/piper_test/test.jsonl real=data/real/librivox.jsonl

Why: docs/asr.md measures the causal conversion of Whisper tiny.en's encoder by the relative
squared error of its states to the original's (1.63 for the recipe's student). That number does
not say whether the states still carry the words, and DESIGN §12 asks what each change costs on
real speech. Here every encoder is frozen, the same small character-CTC probe is trained on its
50 Hz states of synthetic training speech, and greedy transcripts are scored on held-out
synthetic voices, a held-out engine and real speech. The arms:

- ``whisper``: the original encoder (bidirectional, padded convs, absolute positions): the bound;
- ``causal-abs``: causal convs, causal attention within 15 s, Whisper's absolute table (it cannot
  stream past 30 s: a diagnosis, not a candidate);
- ``causal-L1`` .. ``causal-L4``: the recipe's student (rotary positions, what
  scripts/init_from_whisper.py writes), read after each of its layers;
- ``bundled``: the bundled recogniser's encoder (espeak-ng speech only).

Audio is packed into streams of at most 30 s (utterances with 0.32 s of silence between them,
each padded to whole 50 Hz frames) so that Whisper's 30 s window is filled instead of padded;
every utterance's frames are then cut back out. The probe (linear, three dilated convolutions,
linear: about ±0.3 s of context on top of the encoder's) is small on purpose: it asks what is
readable, not what a large model could learn.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
FRAME = 320  # samples per 50 Hz encoder frame
GAP_FRAMES = 16  # 0.32 s of silence between packed utterances
PACK_FRAMES = 1500  # Whisper's window: 30 s of 50 Hz frames
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # index + 1; 0 is the CTC blank
ARMS = ("whisper", "causal-abs", "causal-L1", "causal-L2", "causal-L3", "causal-L4", "bundled")


def char_text(text: str) -> str:
    """The probe's target: lower-case letters, apostrophes and single spaces."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.casefold()).split())


def load_rows(paths: list[str], limit_hours: float | None) -> list[dict]:
    from voxkit.data.manifest import read_manifest

    rows: list[dict] = []
    for path in paths:
        rows.extend(r for r in read_manifest(path) if char_text(r["text"]))
    if limit_hours is not None:
        random.Random(0).shuffle(rows)
        total, kept = 0.0, []
        for r in rows:
            if total > limit_hours * 3600:
                break
            kept.append(r)
            total += float(r.get("duration", 0.0))
        rows = kept
    return rows


def pack(waves: list[torch.Tensor]) -> list[tuple[torch.Tensor, list[tuple[int, int, int]]]]:
    """Utterances -> streams of <= 30 s; each with (utterance index, first frame, frames) spans."""
    packs, current, spans, used = [], [], [], 0
    for i, wave in enumerate(waves):
        frames = math.ceil(wave.numel() / FRAME)
        if current and used + frames + GAP_FRAMES > PACK_FRAMES:  # the gap after it counts too
            packs.append((torch.cat(current), spans))
            current, spans, used = [], [], 0
        current.append(F.pad(wave, (0, frames * FRAME - wave.numel())))
        spans.append((i, used, frames))
        current.append(wave.new_zeros(GAP_FRAMES * FRAME))
        used += frames + GAP_FRAMES
    if current:
        packs.append((torch.cat(current), spans))
    return packs


def build_arms(names: list[str], student_file: str | None = None) -> dict[str, tuple[nn.Module, int, int | None]]:
    """name -> (encoder, mel bins, layer to read or None for its output); layers share one model.

    ``student_file``: the causal student's weights after training (scripts/distill_encoder.py)
    instead of Whisper's as converted.
    """
    from voxkit.asr.bundle import load_bundle
    from voxkit.asr.encoder import CausalAudioEncoder
    from voxkit.asr.whisper import WhisperTeacher, load_whisper_tensors, student_args, whisper_dims, whisper_encoder_state
    from voxkit.checkpoint import assign_state_dict

    tensors = load_whisper_tensors()
    dims = whisper_dims(tensors)
    state = whisper_encoder_state(tensors)
    arms: dict[str, tuple[nn.Module, int, int | None]] = {}
    student = None
    for name in names:
        if name == "whisper":
            arms[name] = (WhisperTeacher(tensors), dims.n_mels, None)
        elif name == "causal-abs":
            args = dataclasses.replace(student_args(dims), positions="sinusoidal", max_seq_len=dims.n_ctx, rope_theta=None)
            with torch.device("meta"):
                enc = CausalAudioEncoder(args, dims.n_mels)
            assign_state_dict(enc, dict(state), torch.device("cpu"), "causal-abs")
            enc.transformer.abs_positions.table = tensors["encoder/position_encodings/encodings"].float()  # [1500, D]
            arms[name] = (enc, dims.n_mels, None)
        elif name.startswith("causal-L"):
            if student is None:
                with torch.device("meta"):
                    student = CausalAudioEncoder(student_args(dims), dims.n_mels)
                assign_state_dict(student, dict(state), torch.device("cpu"), "the causal student")
                if student_file:
                    from safetensors.torch import load_file

                    student.load_state_dict(load_file(student_file))
            layer = int(name.removeprefix("causal-L"))
            arms[name] = (student, dims.n_mels, None if layer == dims.n_layers else layer)
        elif name == "bundled":
            model = load_bundle(dtype=torch.float32).model
            arms[name] = (model.encoder, model.args.n_mels, None)
        else:
            raise SystemExit(f"unknown arm {name!r}; known: {', '.join(ARMS)}")
    return arms


def layer_outputs(encoder: nn.Module, layers: list[int]) -> tuple[dict[int, torch.Tensor], list]:
    """Forward hooks keeping the residual stream after each of ``layers`` (1-based) of the encoder's stack."""
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int):  # noqa: ANN202
        return lambda _m, _i, out: captured.__setitem__(layer, out[0] if isinstance(out, tuple) else out)

    hooks = [encoder.transformer.layers[layer - 1].register_forward_hook(keep(layer)) for layer in layers]
    return captured, hooks


@torch.inference_mode()
def extract(
    encoder: nn.Module, n_mels: int, layers: list[int | None], waves: list[torch.Tensor]
) -> dict[int | None, list[torch.Tensor]]:
    """Frozen states [frames, D] per utterance, for each requested layer (None: the output)."""
    from voxkit.asr.features import LogMel
    from voxkit.asr.whisper_encoder import WhisperEncoder

    encoder.eval()
    mel_of = LogMel(n_mels=n_mels)
    captured, hooks = layer_outputs(encoder, [layer for layer in layers if layer is not None])
    out: dict[int | None, list[torch.Tensor | None]] = {layer: [None] * len(waves) for layer in layers}
    try:
        for audio, spans in pack(waves):
            mel = mel_of(audio[None])  # [1, n_mels, 2 F]
            delay = torch.tensor([6])  # 480 ms: read only by a delay-conditioned encoder
            final = encoder(mel) if isinstance(encoder, WhisperEncoder) else encoder(mel, delay)  # [1, F, D]
            for layer in layers:
                states = final if layer is None else captured[layer]  # [1, F, D]
                for i, start, frames in spans:
                    out[layer][i] = states[0, start : start + frames].to(torch.float16).clone()  # [frames, D]
    finally:
        for hook in hooks:
            hook.remove()
    return out  # type: ignore[return-value]


class Probe(nn.Module):
    """States [B, T, D] -> character log-probabilities [B, T, 29]; about ±0.3 s of context."""

    def __init__(self, dim: int, width: int = 256) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.convs = nn.ModuleList([nn.Conv1d(width, width, 5, dilation=d, padding=2 * d) for d in (1, 2, 4)])
        self.out = nn.Linear(width, len(ALPHABET) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.inp(x)).transpose(1, 2)  # [B, W, T]
        for conv in self.convs:
            h = h + F.gelu(conv(h))  # [B, W, T]
        return self.out(h.transpose(1, 2)).log_softmax(-1)  # [B, T, 29]


def batches(items: list[int], lengths: list[int], max_frames: int, rng: random.Random) -> list[list[int]]:
    order = sorted(items, key=lambda i: lengths[i])
    out, cur, longest = [], [], 0
    for i in order:
        longest = max(longest, lengths[i])
        if cur and longest * (len(cur) + 1) > max_frames:
            out.append(cur)
            cur, longest = [], lengths[i]
        cur.append(i)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(feats: list[torch.Tensor], idx: list[int], mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([feats[i].shape[0] for i in idx])
    x = torch.zeros(len(idx), int(lengths.max()), feats[idx[0]].shape[1])
    for j, i in enumerate(idx):
        x[j, : lengths[j]] = (feats[i].float() - mean) / std
    return x, lengths  # [B, T, D], [B]


def train_probe(
    feats: list[torch.Tensor], texts: list[str], epochs: int, seed: int, max_frames: int = 12000
) -> tuple[Probe, torch.Tensor, torch.Tensor]:
    """The probe trained with CTC on frozen states [T, D] (standardised per dimension) -> probe, mean, std."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    stacked = torch.cat(feats[: min(len(feats), 400)]).float()  # [N, D]
    mean, std = stacked.mean(0), stacked.std(0).clamp_min(1e-3)
    probe = Probe(feats[0].shape[1])
    targets = [torch.tensor([ALPHABET.index(c) + 1 for c in char_text(t)]) for t in texts]
    keep = [i for i in range(len(feats)) if 0 < targets[i].numel() <= feats[i].shape[0]]
    lengths = [f.shape[0] for f in feats]
    plan = [batches(keep, lengths, max_frames, rng) for _ in range(epochs)]
    steps = sum(len(p) for p in plan)
    opt = torch.optim.AdamW(probe.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    probe.train()
    for epoch, epoch_batches in enumerate(plan):
        total, count = 0.0, 0
        for idx in epoch_batches:
            x, x_len = collate(feats, idx, mean, std)
            y = [targets[i] for i in idx]
            log_probs = probe(x)  # [B, T, 29]
            loss = F.ctc_loss(
                log_probs.transpose(0, 1), torch.cat(y), x_len, torch.tensor([t.numel() for t in y]),
                blank=0, reduction="sum", zero_infinity=True,
            ) / sum(t.numel() for t in y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        print(f"    epoch {epoch + 1}: CTC {total / count:.3f} per character", flush=True)
    return probe, mean, std


@torch.inference_mode()
def transcribe(probe: Probe, feats: list[torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> list[str]:
    probe.eval()
    return [greedy(probe(((f.float() - mean) / std)[None])[0].argmax(-1)) for f in feats]


def greedy(best: torch.Tensor) -> str:
    """Best class per frame [T] -> text: repeats merged, then blanks dropped (CTC's rule)."""
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[1:] = best[1:] != best[:-1]
    return " ".join("".join(ALPHABET[i - 1] for i in best[keep & (best > 0)].tolist()).split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", nargs="+", required=True, help="training manifests (synthetic speech)")
    p.add_argument("--eval", nargs="+", required=True, help="NAME=MANIFEST pairs")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--train-hours", type=float, default=None, help="random subset of the training rows")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--student", default=None, help="the causal arms' weights (scripts/distill_encoder.py's encoder.safetensors)")
    p.add_argument("--out", default="runs/probe/results.json")
    a = p.parse_args(argv)
    import jiwer

    from voxkit.asr.evaluate import load_waves, word_error_rate

    torch.set_num_threads(a.threads)
    train_rows = load_rows(a.train, a.train_hours)
    evals = {name: load_rows([path], None) for name, path in (item.split("=", 1) for item in a.eval)}
    print(f"train: {len(train_rows)} utterances, {sum(float(r['duration']) for r in train_rows) / 3600:.2f} h; "
          + ", ".join(f"{k}: {len(v)}" for k, v in evals.items()), flush=True)
    waves = load_waves(train_rows + [r for rows in evals.values() for r in rows], progress=False)
    arm_names = a.arms.split(",")
    arms = build_arms(arm_names, a.student)
    results: dict[str, dict[str, dict[str, float]]] = {}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    by_encoder: dict[int, list[str]] = {}
    for name in arm_names:
        by_encoder.setdefault(id(arms[name][0]), []).append(name)
    for names in by_encoder.values():
        encoder, n_mels, _ = arms[names[0]]
        t0 = time.perf_counter()
        feats = extract(encoder, n_mels, [arms[n][2] for n in names], waves)
        print(f"{', '.join(names)}: states in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in names:
            states = feats[arms[name][2]]
            t0 = time.perf_counter()
            print(f"  {name}: training the probe", flush=True)
            probe, mean, std = train_probe(states[: len(train_rows)], [r["text"] for r in train_rows], a.epochs, seed=0)
            results[name] = {}
            start = len(train_rows)
            for set_name, rows in evals.items():
                hyps = transcribe(probe, states[start : start + len(rows)], mean, std)
                refs = [char_text(r["text"]) for r in rows]
                start += len(rows)
                results[name][set_name] = {"cer": 100 * jiwer.cer(refs, hyps), "wer": 100 * word_error_rate(refs, hyps)}
            print(f"  {name} ({time.perf_counter() - t0:.0f} s): " + ", ".join(
                f"{k} CER {v['cer']:.1f} / WER {v['wer']:.1f}" for k, v in results[name].items()), flush=True)
            Path(a.out).write_text(json.dumps(results, indent=1))
    sets = list(evals)
    print("\n| encoder (frozen) | " + " | ".join(f"{s} CER / WER %" for s in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, scores in results.items():
        print(f"| {name} | " + " | ".join(f"{scores[s]['cer']:.1f} / {scores[s]['wer']:.1f}" for s in sets) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
