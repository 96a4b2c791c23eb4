"""``voxkit selfcheck``: verify this installation against transformers on tiny random models.

Prints each check with its measured number, then exits non-zero if any failed. Needs the parity
extra (``pip install 'voxkit[parity]'``: transformers); everything runs offline on the CPU in well
under a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from voxkit.errors import VoxkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("selfcheck", help="verify parity with transformers and streaming on tiny random models")
    p.set_defaults(func=run)


def _mistral_like(tmp: Path) -> list[tuple[str, float, float]]:
    import torch
    import transformers

    from voxkit.lm.loading import load_transformer, save_transformer

    tiny = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                head_dim=16, vocab_size=128)
    yarn = {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0, "original_max_position_embeddings": 8, "beta_fast": 32.0,
            "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1}
    cases = {
        "Mistral (sliding window 7 < 29 tokens)": (transformers.MistralConfig, transformers.MistralForCausalLM, dict(sliding_window=7)),
        "Mixtral (4 experts, top-2)": (
            transformers.MixtralConfig, transformers.MixtralForCausalLM, dict(num_local_experts=4, num_experts_per_tok=2)
        ),
        "Ministral-3 (YaRN + llama-4 query scale)": (
            transformers.Ministral3Config, transformers.Ministral3ForCausalLM, dict(rope_parameters=yarn, max_position_embeddings=32)
        ),
    }
    out = []
    tokens = torch.randint(0, 128, (2, 29))
    for i, (name, (cfg, cls, extra)) in enumerate(cases.items()):
        hf = cls(cfg(**tiny, **extra)).eval()
        hf.save_pretrained(tmp / f"hf{i}")
        ours = load_transformer(tmp / f"hf{i}")
        save_transformer(ours, tmp / f"native{i}")
        native = load_transformer(tmp / f"native{i}")
        with torch.no_grad():
            ref = hf(tokens).logits
            diff = max((ours(tokens) - ref).abs().max().item(), (native(tokens) - ref).abs().max().item())
        out.append((f"{name}: logits vs transformers (HF and native folders)", diff, 1e-4))
        with torch.no_grad():
            with ours.streaming(2, capacity=12 if extra.get("sliding_window") else 40) as state:
                steps = torch.cat([ours(tokens[:, t : t + 1], state=state) for t in range(29)], dim=1)
            out.append((f"{name}: token-by-token ring-cache decode vs full forward", (steps - ours(tokens)).abs().max().item(), 1e-4))
    return out


def _recogniser(tmp: Path) -> list[tuple[str, float, float]]:
    import torch
    import transformers

    from voxkit.asr.checkpoint import load_recognizer
    from voxkit.asr.features import SAMPLE_RATE
    from voxkit.asr.session import StreamingSession
    from voxkit.lm.fused_step import prepare_cpu_kernels
    from voxkit.lm.fusion import fuse_projections
    from voxkit.tokenizer import ByteTokenizer

    cfg = transformers.VoxtralRealtimeConfig(
        audio_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=16,
                          num_mel_bins=128, sliding_window=5, rope_theta=1e6),
        text_config=dict(vocab_size=ByteTokenizer().vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=7),
    )
    hf = transformers.VoxtralRealtimeForConditionalGeneration(cfg).eval()
    hf.save_pretrained(tmp / "vr")
    ours = load_recognizer(tmp / "vr")
    ours.args.n_left_pad_tokens = 3
    mel = torch.randn(1, 128, 8 * 14)
    ids = torch.randint(0, cfg.text_config.vocab_size, (1, 14))
    with torch.no_grad():
        diff = (hf(input_ids=ids, input_features=mel, num_delay_tokens=6).logits - ours(mel, ids, torch.tensor([6.0]))).abs().max().item()
    out = [("Voxtral Realtime recogniser: logits vs transformers (delay 480 ms)", diff, 1e-4)]
    wav = torch.randn(SAMPLE_RATE) * 0.1  # one second
    fuse_projections(ours)  # as load_bundle does: on a CPU the stream then takes the fused C step
    path = "fused C step" if torch.device("cpu") == next(ours.parameters()).device and prepare_cpu_kernels() else "PyTorch modules"
    session = StreamingSession(ours, ByteTokenizer(), 1)
    session.start(0, 6)
    streamed = []
    for i in range(0, wav.numel(), 777):
        session.push(0, wav[i : i + 777])
        while session.ready():
            session.step()
            streamed.append(int(session.prev[0]))
    session.finish(0)
    while session.active:
        session.step()
        streamed.append(int(session.prev[0]))
    session.close()
    from voxkit.asr.features import LOOKAHEAD, SAMPLES_PER_STEP, LogMel

    L, steps = 3, len(streamed)
    audio = torch.zeros(steps * SAMPLES_PER_STEP + LOOKAHEAD)
    audio[L * SAMPLES_PER_STEP : L * SAMPLES_PER_STEP + wav.numel()] = wav
    feats = LogMel()(audio[None])[..., : steps * 8]
    prompt = [1] + [32] * (L + 6)
    with torch.no_grad():
        logits = ours(feats, torch.tensor([prompt + streamed[len(prompt) - 1 : -1]]), torch.tensor([6.0]))[0]
    mismatch = sum(int(a != b) for a, b in zip(logits.argmax(-1).tolist()[len(prompt) - 1 :], streamed[len(prompt) - 1 :], strict=True))
    name = f"Recogniser ({path}): streamed tokens (random 777-sample chunks) that differ from the offline forward"
    out.append((name, float(mismatch), 0.0))
    return out


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    try:
        import transformers
    except ImportError:
        raise VoxkitError("voxkit selfcheck compares against transformers: pip install 'voxkit[parity]'") from None

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    torch.manual_seed(0)
    checks: list[Callable[[Path], list[tuple[str, float, float]]]] = [_mistral_like, _recogniser]
    failed = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for check in checks:
            for name, value, limit in check(Path(tmp)):
                ok = value <= limit
                failed += not ok
                shown = f"{value:.0f} (must be 0)" if limit == 0 else f"{value:.2e} (limit {limit:.0e})"
                print(f"[{'ok' if ok else 'FAIL'}] {name}: {shown}", flush=True)
    print(f"{'all checks passed' if not failed else f'{failed} checks FAILED'} in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0
