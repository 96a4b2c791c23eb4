"""Streaming recognition speed: voxkit's streaming session vs transformers' VoxtralRealtime.

Both run the SAME weights: a random transformers ``VoxtralRealtimeForConditionalGeneration`` with
the bundled model's shapes, saved and loaded into voxkit through its transformers loader. They
transcribe the same audio greedily at the same delay. transformers decodes a whole file at once
(``generate``); voxkit transcribes a file as its API does (the causal encoder over up to 32 steps
per call, then the decoder token by token) and, in a second row, streams 80 ms steps exactly as a
live session does (features included).
Also printed: the bundled (trained) model's per-step latency, and how many concurrent streams
one process keeps real-time (per-step compute < 80 ms).

    python scripts/bench_asr.py --threads 1
    python scripts/bench_asr.py --full-size          # Voxtral-Mini-4B-Realtime shapes, bf16, CUDA only
    python scripts/bench_asr.py --full-size --graphs # + the lock-step streams replaying CUDA graphs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from voxkit.asr.bundle import default_model_dir, load_bundle
from voxkit.asr.checkpoint import load_recognizer
from voxkit.asr.options import MAX_DELAY_STEPS, MIN_DELAY_STEPS
from voxkit.asr.session import StreamingSession, transcribe_batch
from voxkit.audio.constants import ASR_SAMPLE_RATE, ASR_SAMPLES_PER_STEP, STEP_MS
from voxkit.audio.io import load_audio
from voxkit.bench import flags
from voxkit.bench.machine import describe
from voxkit.lm.fusion import fuse_projections

SAMPLE = Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "samples" / "en.flac"


def hf_twin(args, device: torch.device, dtype: torch.dtype):  # noqa: ANN001 -> transformers model
    from transformers import VoxtralRealtimeConfig, VoxtralRealtimeForConditionalGeneration

    enc, dec = args.encoder, args.decoder
    cfg = VoxtralRealtimeConfig(
        audio_config=dict(hidden_size=enc.dim, intermediate_size=enc.hidden_dim, num_hidden_layers=enc.n_layers,
                          num_attention_heads=enc.n_heads, head_dim=enc.head_dim, num_mel_bins=args.n_mels,
                          sliding_window=enc.max_window, rope_theta=enc.theta, rms_norm_eps=enc.norm_eps),
        text_config=dict(vocab_size=dec.vocab_size, hidden_size=dec.dim, intermediate_size=dec.hidden_dim,
                         num_hidden_layers=dec.n_layers, num_attention_heads=dec.n_heads, num_key_value_heads=dec.n_kv_heads,
                         head_dim=dec.head_dim, sliding_window=dec.max_window, rope_theta=dec.theta, rms_norm_eps=dec.norm_eps),
    )
    torch.manual_seed(0)
    # built directly on the device in its dtype: a full-size (4B) model initialised on the CPU in
    # float32 would take minutes
    with torch.device(device):
        model = VoxtralRealtimeForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval()


def hf_transcribe(model, wav: torch.Tensor, left_pad: int, delay: int) -> list[int]:  # noqa: ANN001
    """transformers' own offline streaming-layout decode (padding as mistral-common's offline mode)."""
    from transformers import VoxtralRealtimeFeatureExtractor

    step = ASR_SAMPLES_PER_STEP
    steps = -(-wav.numel() // step)
    audio = torch.nn.functional.pad(wav, (left_pad * step, (steps * step - wav.numel()) + (delay + 1 + 10) * step))
    feats = VoxtralRealtimeFeatureExtractor()(audio.numpy(), sampling_rate=ASR_SAMPLE_RATE, return_tensors="pt").input_features
    feats = feats.to(model.device, model.dtype)
    prompt = torch.tensor([[1] + [32] * (left_pad + delay)], device=model.device)
    with torch.inference_mode():
        out = model.generate(input_ids=prompt, input_features=feats, num_delay_tokens=delay, do_sample=False)
    return out[0].tolist()


def agreement(theirs: str, ours: str) -> str:
    """How far the two libraries' transcripts of the same file agree, spaces aside (voxkit writes
    words, transformers' decode joins text pieces): a timing of two different outputs compares
    different work, so the table's reader must see whether they match."""
    a, b = "".join(theirs.split()), "".join(ours.split())
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    verdict = "the same" if a == b else f"the same for the first {same} characters"
    return f"transcripts (spaces aside): transformers {len(a)} characters, voxkit {len(b)}, {verdict}"


def median_time(fn, repeats: int, sync: bool) -> float:  # noqa: ANN001
    times = []
    for i in range(repeats + 1):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        if i:  # first call is a warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_latency(
    model, tokenizer, streams: int, steps: int, delay: int, graphs: bool = False  # noqa: ANN001
) -> tuple[list[float], list[list[int]]]:
    """Seconds per lock-step 80 ms step for ``streams`` concurrent live streams, and each step's tokens.

    ``graphs``: the session replays its steps as CUDA graphs (recorded when it is made, untimed).
    """
    session = StreamingSession(model, tokenizer, streams, device=next(model.parameters()).device, graphs=graphs)
    noise = torch.randn(ASR_SAMPLES_PER_STEP * (steps + 40), generator=torch.Generator().manual_seed(0)) * 0.05
    for b in range(streams):
        session.start(b, delay)
        session.push(b, noise)
    out, tokens = [], []
    sync = noise.device.type == "cuda" or next(model.parameters()).is_cuda
    for i in range(steps):
        t0 = time.perf_counter()
        session.step()
        if sync:
            torch.cuda.synchronize()
        if i >= 5:
            out.append(time.perf_counter() - t0)
        tokens.append(session.prev.tolist())
    session.close()
    return out, tokens


def long_stream_rtf(model, tokenizer, wav: torch.Tensor, delay: int, minutes: float) -> list[tuple[str, float]]:  # noqa: ANN001
    """RTF of one live stream of ``minutes`` (the sample again and again, 0.5-2 s pauses), pushed
    80 ms at a time, cut at pauses (what the API does) and handed to the model whole."""
    from voxkit.asr.segments import DEFAULT_SEGMENTING, SegmentedStream

    gen = torch.Generator().manual_seed(0)
    pieces, total = [], 0
    while total < minutes * 60 * ASR_SAMPLE_RATE:
        pause = torch.zeros(int(ASR_SAMPLE_RATE * (0.5 + 1.5 * torch.rand(1, generator=gen).item())))  # [P]
        pieces += [wav, pause]
        total += wav.numel() + pause.numel()
    stream = torch.cat(pieces).numpy()  # [N]
    rows = []
    for name, segmenting in (("cut at pauses (default)", DEFAULT_SEGMENTING), ("whole", None)):
        live = SegmentedStream(model, tokenizer, delay, segmenting, chunk_steps=1)
        t0 = time.perf_counter()
        for i in range(0, stream.shape[0], ASR_SAMPLES_PER_STEP):
            live.push(stream[i : i + ASR_SAMPLES_PER_STEP])
        live.finish()
        rows.append((name, (time.perf_counter() - t0) / (stream.shape[0] / ASR_SAMPLE_RATE)))
        live.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=flags.whole(1), default=1)
    ap.add_argument("--repeats", type=flags.whole(1), default=3, help="timed runs after one warm-up (median)")
    ap.add_argument("--delay", type=flags.whole(MIN_DELAY_STEPS, MAX_DELAY_STEPS), default=6, help="delay in 80 ms steps")
    ap.add_argument("--full-size", action="store_true", help="Voxtral-Mini-4B-Realtime shapes, random bf16 weights, CUDA")
    ap.add_argument("--model", type=flags.folder, default=None, help="trained recogniser folder (default: the bundled one)")
    ap.add_argument("--graphs", action="store_true",
                    help="also time the lock-step streams replaying CUDA graphs (needs --full-size: a GPU)")
    ap.add_argument("--long-minutes", type=flags.number(0, most=24 * 60), default=2.0,
                    help="minutes of the one-stream row, pushed live with and without cuts at pauses (0: skip)")
    a = ap.parse_args()
    if a.full_size:
        flags.require_cuda(ap, "--full-size")
    if a.full_size and a.model:
        ap.error("--full-size builds random full-size weights; --model names a trained one: give one of them")
    torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.full_size else "cpu")
    dtype = torch.bfloat16 if a.full_size else torch.float32
    wav = load_audio(SAMPLE, ASR_SAMPLE_RATE)
    seconds = wav.numel() / ASR_SAMPLE_RATE
    print(describe(device, ("transformers",)))
    print(f"audio: {SAMPLE.name}, {seconds:.2f} s; delay {a.delay * STEP_MS} ms; device {device}, {dtype}, threads {a.threads}")

    if a.full_size:
        from voxkit.asr.args import RealtimeArgs
        from voxkit.lm import TransformerArgs

        args = RealtimeArgs(
            decoder=TransformerArgs(dim=3072, n_layers=26, head_dim=128, hidden_dim=9216, n_heads=32, n_kv_heads=8, vocab_size=131072,
                                    rope_theta=1e6, sliding_window=8192, tied_embeddings=True, ada_rms_norm_t_cond=True,
                                    ada_rms_norm_t_cond_dim=32),
            encoder=TransformerArgs(dim=1280, n_layers=32, head_dim=64, hidden_dim=5120, n_heads=32, n_kv_heads=32, vocab_size=0,
                                    rope_theta=1e6, sliding_window=750, use_biases=True),
        )
        tokenizer = None
    else:
        bundle = load_bundle(a.model or default_model_dir())
        args, tokenizer = bundle.model.args, bundle.tokenizer

    hf = hf_twin(args, device, dtype)
    # stage the weights in RAM when it has room (8 GB at full size; Docker's /dev/shm is often 64 MB)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 16 << 30 else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        hf.save_pretrained(tmp)
        ours = load_recognizer(tmp, device=device, dtype=dtype)
    fuse_projections(ours)  # as load_bundle does: what a user of the API runs
    ours.args.n_left_pad_tokens = args.n_left_pad_tokens
    if tokenizer is None:
        from voxkit.tokenizer import TekkenTokenizer

        tokenizer = TekkenTokenizer.shipped()
    left = args.n_left_pad_tokens

    sync = device.type == "cuda"
    t_hf = median_time(lambda: hf_transcribe(hf, wav, left, a.delay), a.repeats, sync)
    t_vk = median_time(lambda: transcribe_batch(ours, tokenizer, [wav.to(device)], a.delay, batch_size=1), a.repeats, sync)
    t_live = median_time(
        lambda: transcribe_batch(ours, tokenizer, [wav.to(device)], a.delay, batch_size=1, chunk_steps=1), a.repeats, sync
    )
    print(agreement(tokenizer.decode(hf_transcribe(hf, wav, left, a.delay)[1 + left + a.delay :]),
                    transcribe_batch(ours, tokenizer, [wav.to(device)], a.delay, batch_size=1)[0].text))
    print("\n| what (same random weights, same audio) | transformers | voxkit | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| RTF, one file, greedy | {t_hf / seconds:.4f} | {t_vk / seconds:.4f} | {t_hf / t_vk:.2f}x |")
    print(f"| RTF, one file, voxkit stepping 80 ms at a time (live) | {t_hf / seconds:.4f} | {t_live / seconds:.4f} "
          f"| {t_hf / t_live:.2f}x |")

    trained = ours if a.full_size else bundle.model
    hf = None  # drop the transformers twin's weights (8 GB at full size): the streams' KV caches need the room
    if sync:
        torch.cuda.empty_cache()
    name = "full-size random" if a.full_size else f"trained {bundle.folder.name}"
    graphs = a.graphs and device.type == "cuda"
    if a.graphs and not graphs:
        print("\n--graphs: CUDA graphs need a GPU (--full-size); skipped")
    print(f"\n{name}: per-step latency with N concurrent streams (lock-step, 80 ms of audio per step)\n")
    extra = " CUDA graphs median ms/step | CUDA graphs p95 ms/step | graphs = eager tokens |" if graphs else ""
    print(f"| streams | median ms/step | p95 ms/step | step time / 80 ms | real-time |{extra}")
    print("|---:|---:|---:|---:|---|" + ("---:|---:|---|" if graphs else ""))
    # full size: each stream's decoder KV cache spans the 8192-token window (26 layers: 0.87 GB in
    # bf16), so 128 streams (112 GB) do not fit next to the weights on a 141 GB card
    for n in (1, 4, 16, 64) if not a.full_size else (1, 8, 32, 64):
        lat, tokens = step_latency(trained, tokenizer, n, 60, a.delay)
        lat.sort()
        med, p95 = statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]
        row = f"| {n} | {1000 * med:.2f} | {1000 * p95:.2f} | {med / 0.08:.3f} | {'yes' if p95 < 0.08 else 'no'} |"
        if graphs:
            g_lat, g_tokens = step_latency(trained, tokenizer, n, 60, a.delay, graphs=True)
            g_lat.sort()
            agree = next((i for i, (x, y) in enumerate(zip(g_tokens, tokens, strict=True)) if x != y), len(tokens))
            same = "all" if agree == len(tokens) else f"first {agree} steps"
            row += f" {1000 * statistics.median(g_lat):.2f} | {1000 * g_lat[int(0.95 * (len(g_lat) - 1))]:.2f} | {same} |"
        print(row, flush=True)
    if a.long_minutes > 0 and not a.full_size:
        print(f"\n{name}: one live stream of {a.long_minutes:g} minutes pushed 80 ms at a time (the API's stream)\n")
        print("| stream | RTF |")
        print("|---|---:|")
        for label, rtf in long_stream_rtf(trained, tokenizer, wav, a.delay, a.long_minutes):
            print(f"| {label} | {rtf:.4f} |")


if __name__ == "__main__":
    main()
