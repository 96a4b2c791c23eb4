"""TTS speed: time to first audio and real-time factor, voxkit next to a peer on the same text.

voxkit: the whole streaming path of ``voxkit.Speaker.stream`` for one sentence: prompt prefill
(voice prompt + text), then per 80 ms frame a backbone step, the semantic head, the flow head's
Euler steps with guidance (both branches in one batch) and the codec decoder's streaming step.
The frame count is fixed (``--frames``; [END_AUDIO] masked until then) so that every round makes
the same audio, whatever random or trained weights say.

* time to first audio: from the call until the first 80 ms of waveform is out;
* real-time factor: the whole call / seconds of audio (below 1 is faster than real time).

Peer: Piper (the ONNX neural TTS of the ``voices`` extra, en_US-joe-medium) on the same text, same
process, alternating rounds (its first chunk is its first sentence). On a GPU, the published
Voxtral TTS figures (70 ms first audio, RTF 0.103 on an H200 at concurrency 1) are printed beside.

    python scripts/bench_tts.py --model voxkit/assets/tts-tiny --threads 1          # the bundled model
    python scripts/bench_tts.py --config tiny --codec DIR --threads 1                # recipe shape, random weights
    python scripts/bench_tts.py --config full --device cuda --dtype bfloat16 --compile-flow   # full size, random
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from voxkit.bench import flags
from voxkit.bench.machine import describe
from voxkit.timing import median_times
from voxkit.tts.generate import MAX_STEPS

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest."


def build(args: argparse.Namespace, device: torch.device, dtype: torch.dtype):  # noqa: ANN201 - (model, codec, tokenizer)
    from voxkit.codec.api import Codec
    from voxkit.codec.args import CodecArgs
    from voxkit.codec.model import CodecModel
    from voxkit.tokenizer import ByteTokenizer
    from voxkit.tts.api import Speaker
    from voxkit.tts.args import TTSArgs
    from voxkit.tts.model import TTSModel

    if args.model:
        speaker = Speaker.from_pretrained(args.model, device=device)
        return speaker.model, speaker.codec, speaker.tokenizer
    torch.manual_seed(0)
    if args.config == "full":
        codec = Codec(CodecModel(CodecArgs()).to(dtype), device=device)
        model = TTSModel(TTSArgs.full())
    else:
        codec = Codec.from_pretrained(args.codec, device=device) if args.codec else Codec(CodecModel(CodecArgs.small()), device=device)
        c = codec.model.args
        model = TTSModel(TTSArgs.tiny(vocab_size=5754, semantic_codebook_size=c.semantic_codebook_size, acoustic_dim=c.acoustic_dim,
                                      acoustic_levels=c.acoustic_codebook_size))
    for name, module in model.named_children():
        module.to(device=device, dtype=dtype if name != "frame_embeddings" else torch.float32)
    model.frame_embeddings.to(dtype)
    return model.eval(), codec, ByteTokenizer()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=flags.folder, default=None, help="a TTS model folder (default: random weights of --config)")
    p.add_argument("--config", choices=("tiny", "full"), default="tiny")
    p.add_argument("--codec", type=flags.folder, default=None, help="codec folder for --config tiny (default: a random small codec)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--threads", type=flags.whole(0), default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--frames", type=flags.whole(1), default=75, help="frames generated per call (75 = 6 s of audio)")
    p.add_argument("--reference-frames", type=flags.whole(1), default=125, help="voice prompt length (125 = 10 s)")
    p.add_argument("--steps", type=flags.whole(1, MAX_STEPS), default=7)
    p.add_argument("--cfg", type=flags.number(0), default=1.2)
    p.add_argument("--repeats", type=flags.whole(1), default=3, help="timed rounds after one warm-up (median)")
    p.add_argument("--compile-flow", action="store_true", help="torch.compile the flow head (CUDA graphs on a GPU)")
    p.add_argument("--no-peer", action="store_true", help="skip Piper")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    device, dtype = flags.device(p, args.device), getattr(torch, args.dtype)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        p.error(f"--json {args.json}: its folder does not exist")  # found now, not after the timing
    if args.threads:
        torch.set_num_threads(args.threads)

    from voxkit.tts.generate import GenerationOptions, generate_frames

    model, codec, tokenizer = build(args, device, dtype)
    if args.compile_flow:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        model.flow.velocity = torch.compile(model.flow.velocity, mode=mode, dynamic=False)  # type: ignore[method-assign]
    a = model.args
    reference = torch.cat([torch.randint(0, a.semantic_codebook_size, (args.reference_frames, 1)),
                           torch.randint(0, a.acoustic_levels, (args.reference_frames, a.acoustic_dim))], dim=1)  # [R, 37]
    ids = tokenizer.encode(TEXT, bos=False)
    options = GenerationOptions(steps=args.steps, cfg=args.cfg, max_frames=args.frames, min_frames=args.frames)
    audio_s = args.frames * codec.samples_per_frame / codec.sample_rate
    first: dict[str, list[float]] = {"voxkit": [], "piper": []}

    @torch.inference_mode()
    def voxkit_call() -> None:
        start = time.perf_counter()
        prompt = model.prompt(ids, reference)
        decoder = codec.stream()
        n = 0
        for frame in generate_frames(model, prompt, options, torch.Generator().manual_seed(0)):
            decoder.decode(frame[None].cpu())
            if n == 0:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                first["voxkit"].append(time.perf_counter() - start)
            n += 1
        assert n == args.frames

    fns = {"voxkit": voxkit_call}
    piper_s = None
    if not args.no_peer:
        try:
            from voxkit.data.piper import load_voice

            voice = load_voice("en_US-joe-medium")
            rate = voice.config.sample_rate

            def piper_call() -> None:
                start, total = time.perf_counter(), 0
                for i, chunk in enumerate(voice.synthesize(TEXT)):
                    if i == 0:
                        first["piper"].append(time.perf_counter() - start)
                    total += len(chunk.audio_float_array)
                nonlocal piper_s
                piper_s = total / rate

            fns["piper"] = piper_call
        except Exception as err:  # an optional peer: say why it is missing, measure voxkit anyway
            print(f"peer Piper unavailable: {err}", file=sys.stderr)
    times = median_times(fns, args.repeats, device)
    rows = {"voxkit": {"first_audio_s": float(np.median(first["voxkit"][1:] or first["voxkit"])), "rtf": times["voxkit"] / audio_s,
                       "audio_s": audio_s}}
    if "piper" in times and piper_s:
        rows["piper"] = {"first_audio_s": float(np.median(first["piper"][1:] or first["piper"])), "rtf": times["piper"] / piper_s,
                         "audio_s": piper_s}
    params = sum(p.numel() for p in model.parameters()) / 1e6
    shape = args.model or f"{args.config} (random weights)"
    print(describe(device, () if args.no_peer else ("piper-tts",)))
    print(f"TTS {shape}, {params:.1f}M params, {args.device} {args.dtype}, threads {torch.get_num_threads()}, "
          f"{args.steps} flow steps, cfg {args.cfg}, voice prompt {args.reference_frames} frames, {args.frames} frames out")
    print(f"{'system':<10} {'first audio (ms)':>17} {'RTF':>7} {'audio (s)':>10}")
    for name, row in rows.items():
        print(f"{name:<10} {1000 * row['first_audio_s']:>17.1f} {row['rtf']:>7.3f} {row['audio_s']:>10.2f}")
    if device.type == "cuda":
        print(f"{'published':<10} {70.0:>17.1f} {0.103:>7.3f} {'-':>10}  (Voxtral TTS, H200, concurrency 1)")
    if args.json:
        Path(args.json).write_text(json.dumps({"shape": shape, "device": args.device, "dtype": args.dtype, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
