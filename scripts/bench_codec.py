"""Codec speed: voxkit's codec next to Codec2 3.2 kbps and Opus 6 kbps on the same audio, same run.

Printed per codec: encode + decode real-time factor of a whole clip (compute seconds per audio
second; < 1 is faster than real time), and for voxkit the streaming latency of one 80 ms frame
(encode one frame + decode it, with the stream's state, as a live call does): median and p95.
Then voxkit's live API (:class:`~voxkit.codec.api.CodecStream`) per 80 ms frame, encode and
decode apart, fed 80 ms chunks and 1 s chunks (a 1 s chunk's frames go through in one call).
The codec runs as :meth:`Codec.from_pretrained` loads it: weight norm folded into the weights.
The classical peers run as the Debian command-line tools (process start-up included; that is
how ``voxkit eval codec`` runs them too).

    python scripts/bench_codec.py --threads 1                      # small config, random weights
    python scripts/bench_codec.py --model runs/codec_small/export  # a trained codec
    python scripts/bench_codec.py --full-size                      # d 1024 (~300M), bf16, CUDA only

Random weights time exactly like trained ones (same shapes, same ops).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from voxkit.audio.io import load_audio
from voxkit.bench import flags
from voxkit.bench.machine import describe
from voxkit.codec.api import Codec
from voxkit.codec.args import CodecArgs
from voxkit.codec.model import CodecModel
from voxkit.conv import fold_weight_norm

SAMPLE = Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "samples" / "en.flac"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_whole(model: CodecModel, wave: torch.Tensor, repeats: int) -> float:
    """Median seconds to encode and decode ``wave`` [1, N] in one call each."""
    times = []
    for _ in range(repeats):
        _sync(wave.device)
        start = time.perf_counter()
        model.decode(model.encode(wave))
        _sync(wave.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_frames(model: CodecModel, wave: torch.Tensor) -> list[float]:
    """Seconds per 80 ms frame: encode it and decode its codes through one stream's state."""
    frame = model.samples_per_frame
    state = model.init_state(1)
    times = []
    for i in range(wave.shape[1] // frame):
        _sync(wave.device)
        start = time.perf_counter()
        model.decode(model.encode(wave[:, i * frame : (i + 1) * frame], state), state)
        _sync(wave.device)
        times.append(time.perf_counter() - start)
    return times[2:]  # the first frames warm the caches up


def time_stream(codec: Codec, wave: np.ndarray, chunk: int) -> tuple[list[float], list[float]]:
    """Seconds per 80 ms frame of a live stream fed ``chunk`` samples at a time: encode each chunk,
    then decode the codes it gave (as a live caller does), each call's time shared by its frames."""
    encoder, decoder = codec.stream(), codec.stream()
    encode, decode = [], []
    for i in range(0, wave.shape[0] - chunk + 1, chunk):
        _sync(codec.device)
        start = time.perf_counter()
        codes = encoder.encode(wave[i : i + chunk])  # [F, 37]
        _sync(codec.device)
        middle = time.perf_counter()
        decoder.decode(codes)
        _sync(codec.device)
        if codes.shape[0] and i >= 24000:  # the first second warms the caches up
            encode.append((middle - start) / codes.shape[0])
            decode.append((time.perf_counter() - middle) / codes.shape[0])
    return encode, decode


def _ms(times: list[float]) -> str:
    """Median / p95 in ms."""
    p95 = sorted(times)[int(0.95 * (len(times) - 1))]
    return f"{1000 * statistics.median(times):.1f} / {1000 * p95:.1f}"


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def long_stream(model: CodecModel, wave: torch.Tensor, minutes: float) -> None:
    """Encode and decode ``minutes`` of audio (``wave`` [N] repeated) frame by frame through one
    stream's state; the RSS at each tenth shows whether anything grows with the stream's length."""
    frame = model.samples_per_frame
    frames = int(minutes * 60 * 24000) // frame
    state = model.init_state(1)
    marks = []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(frames):
            j = i % (wave.shape[0] // frame)
            model.decode(model.encode(wave[None, j * frame : (j + 1) * frame], state), state)
            if i % max(1, frames // 10) == 0:
                marks.append(f"{_rss_mb():.0f}")
    took = time.perf_counter() - start
    print(f"stream of {minutes:g} min ({frames} frames) frame by frame: {1000 * took / frames:.1f} ms per frame; "
          f"RSS MB at each tenth: {' '.join(marks)}")


def peer_rtf(name: str, audio: np.ndarray, seconds: float) -> float | None:
    from voxkit.codec.peers import load_peer_codec
    from voxkit.errors import VoxkitError

    try:
        peer = load_peer_codec(name)
    except VoxkitError:
        return None
    start = time.perf_counter()
    peer.roundtrip(audio, 24000)
    return (time.perf_counter() - start) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=flags.folder, default=None, help="a codec folder (default: random weights of the small config)")
    p.add_argument("--full-size", action="store_true", help="the d 1024 config in bf16 on CUDA")
    p.add_argument("--threads", type=flags.whole(1), default=1)
    p.add_argument("--seconds", type=flags.number(1, most=3600), default=10.0, help="audio length (the bundled sample, repeated)")
    p.add_argument("--repeats", type=flags.whole(1), default=3)
    p.add_argument("--stream-minutes", type=flags.number(0, most=24 * 60), default=0.0,
                   help="also stream this many minutes frame by frame (encode + decode) and print the process's RSS over it")
    args = p.parse_args()
    if args.full_size:
        flags.require_cuda(p, "--full-size")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if args.full_size else "cpu")
    if args.model:
        from voxkit.codec.checkpoint import load_codec

        model = load_codec(args.model, device=device)
        label = f"voxkit ({args.model})"
    else:
        config = CodecArgs() if args.full_size else CodecArgs.small()
        model = CodecModel(config).to(device).eval()
        label = f"voxkit {'full d1024' if args.full_size else 'small d256'}"
    if args.full_size:
        model = model.to(torch.bfloat16)
        model.quantizer.float()
    fold_weight_norm(model)  # as Codec.from_pretrained loads a codec
    codec = Codec(model, device=device)
    dtype = next(model.encoder_blocks.parameters()).dtype
    params = sum(p.numel() for p in model.parameters()) / 1e6
    sample = load_audio(SAMPLE, 24000)  # [N]
    frame = model.samples_per_frame
    n = int(args.seconds * 24000) // frame * frame
    wave = sample.repeat(n // sample.shape[0] + 1)[:n]
    seconds = n / 24000
    x = wave[None].to(device, dtype)  # [1, N]
    with torch.inference_mode():
        time_whole(model, x[:, : 4 * frame], 1)  # warm-up
        whole = time_whole(model, x, args.repeats)
        per_frame = time_frames(model, x)
        live = {name: time_stream(codec, wave.numpy(), chunk) for name, chunk in (("80 ms", frame), ("1 s", 24000))}
    print(describe(device))
    print(f"{seconds:.1f} s of speech at 24 kHz\n")
    print("| codec | kbps | params | encode+decode RTF (whole clip) | streaming ms per 80 ms frame (median / p95) |")
    print("|---|---|---|---|---|")
    p95 = sorted(per_frame)[int(0.95 * (len(per_frame) - 1))]
    print(f"| {label}, {str(dtype).removeprefix('torch.')} | {model.args.bitrate_bps / 1000:.2f} | {params:.1f} M | "
          f"{whole / seconds:.4f} | {1000 * statistics.median(per_frame):.1f} / {1000 * p95:.1f} |")
    audio = wave.numpy()
    for name, kbps in (("codec2-3200", 3.2), ("opus-6000", 6.0)):
        rtf = peer_rtf(name, audio, seconds)
        shown = "not installed" if rtf is None else f"{rtf:.4f}"
        print(f"| {name} (Debian tool, process start included) | {kbps:.1f} | - | {shown} | - |")
    print("\n| voxkit CodecStream, chunks of | encode ms per 80 ms frame (median / p95) | decode ms per 80 ms frame (median / p95) |")
    print("|---|---|---|")
    for chunk, (encode, decode) in live.items():
        print(f"| {chunk} | {_ms(encode)} | {_ms(decode)} |")
    if args.stream_minutes > 0:
        print()
        long_stream(model, x[0], args.stream_minutes)


if __name__ == "__main__":
    main()
