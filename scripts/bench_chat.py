"""Audio-chat throughput: voxkit's chat model next to transformers' VoxtralForConditionalGeneration.

Both libraries run the same weights on the same inputs in one process. A random transformers
Voxtral of the chosen shape is built (``torch.manual_seed(0)``) and saved with
``save_pretrained``; transformers loads that folder with ``from_pretrained`` and voxkit with
``voxkit.chat.checkpoint.load_chat`` and ``voxkit.lm.fused_step.prepare_for_inference``, as
``voxkit.AudioChat.from_pretrained`` does (fused projections, the fused CPU step). The prompt is a chat turn around one 30 s audio chunk:
``<s>[INST][BEGIN_AUDIO]`` + 375 ``[AUDIO]`` (id 24) + 36 text ids + ``[/INST]`` (415 positions), with
the same random log-mel features [chunks, n_mels, 3000] given to both.

Measured (median of ``--repeats`` timed rounds after one warm-up round; the libraries alternate
within a round so both see the same machine load):

* prefill: the first forward of a generation (the prompt fills the KV cache and gives the
  next-token logits), batch 1 and 4, prompt positions/s; once with the audio encoder and adapter
  (from mel features) and once for the decoder alone (input embeddings with audio already in place);
* greedy decode, batch 1: ``--new-tokens`` N tokens after that prompt with voxkit's
  ``voxkit.lm.generate.Generator`` (``prompt_embeddings``, as ``voxkit.AudioChat`` runs it) and
  transformers' ``generate(max_new_tokens=N, min_new_tokens=N, do_sample=False)``. Neither stops
  early (no stop ids). Reported as N / whole call (audio encoding and prefill included) and as the
  per-token rate after the first token: (N - 1) / (t(N) - t(1)).

It also checks that the two agree: the prefill's next-token logits and the N greedy tokens.
Tied embeddings (tiny, small): transformers' Voxtral never ties its ``lm_head`` (it reads the
stored one whatever ``tie_word_embeddings`` says; voxkit then reads such a folder as untied), so
the stored ``lm_head`` is set to a copy of the embeddings: both libraries run the tied model.
Why: the chat model is served on this decoder; the comparison says whether voxkit's own encoder,
cache and decode loop cost or save time against the reference implementation of the same model.

    python scripts/bench_chat.py --config tiny                       # smoke run, seconds
    python scripts/bench_chat.py --config small --threads 2          # voxkit's small chat model's shape
    python scripts/bench_chat.py --config full --device cuda --dtype bfloat16   # Voxtral-Mini-3B's shape
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import torch

from voxkit.bench.machine import describe
from voxkit.timing import median_times
from voxkit.tokenizer import AUDIO_ID, BEGIN_AUDIO_ID, BOS_ID, END_INST_ID, INST_ID

N_TEXT = 36  # text ids besides <s>[INST][BEGIN_AUDIO] ... [/INST]: about 40 text positions
CONFIGS = {  # (audio_config, text_config) of transformers' VoxtralConfig
    "tiny": (dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, num_mel_bins=80),
             dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, vocab_size=2048, rope_theta=1e4, max_position_embeddings=1024, tie_word_embeddings=True)),
    # Whisper-tiny-sized encoder + the decoder of voxkit's small chat model (recipes/chat_tiny.toml)
    "small": (dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=6, num_mel_bins=80),
              dict(hidden_size=256, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                   head_dim=64, vocab_size=5754, rope_theta=1e4, max_position_embeddings=4096, tie_word_embeddings=True)),
    # Voxtral-Mini-3B's shapes (random weights, 9.4 GB in bfloat16): for a GPU
    "full": (dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, num_mel_bins=128),
             dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=8,
                  head_dim=128, vocab_size=131072, rope_theta=1e8, max_position_embeddings=32768, tie_word_embeddings=False)),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        sys.exit(f"{self.prog}: error: {message}")


def build_folder(name: str, folder: str, device: torch.device, dtype: torch.dtype) -> None:
    """A random transformers Voxtral of the named shape, saved to ``folder``."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    audio, text = CONFIGS[name]
    # transformers' default std 0.02 makes a random decoder repeat one token whatever the context;
    # 2 / sqrt(width) gives varied greedy tokens, so that their agreement means something
    text = dict(text, model_type="llama", initializer_range=2 / text["hidden_size"] ** 0.5)
    config = VoxtralConfig(audio_config=dict(audio, max_source_positions=1500), text_config=text,
                           audio_token_id=AUDIO_ID, tie_word_embeddings=text["tie_word_embeddings"])
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialised in place on the device: a 3B model never visits the host
    try:
        with torch.device(device):
            model = VoxtralForConditionalGeneration(config)
        if text["tie_word_embeddings"]:  # see the module docstring: the same matrix in both libraries
            with torch.no_grad():
                model.lm_head.weight.copy_(model.get_input_embeddings().weight)
        model.save_pretrained(folder)
    finally:
        torch.set_default_dtype(previous)


def make_inputs(batch: int, vocab: int, n_mels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt ids [B, 415] (one audio chunk each) and mel features [B, n_mels, 3000], seeded."""
    g = torch.Generator().manual_seed(1 + batch)
    text = torch.randint(min(1000, vocab // 2), vocab, (batch, N_TEXT), generator=g)  # never a control id
    head = torch.tensor([BOS_ID, INST_ID, BEGIN_AUDIO_ID] + [AUDIO_ID] * 375).expand(batch, -1)
    ids = torch.cat([head, text, torch.full((batch, 1), END_INST_ID)], dim=1)  # [B, T]
    mel = torch.randn(batch, n_mels, 3000, generator=g) * 0.5  # [B, n_mels, 3000]: log-mel scale
    return ids.to(device), mel.to(device)


# ----------------------------------------------------------------------------- both libraries


def vk_embed(model, ids: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - ChatModel
    with torch.inference_mode():
        return model.embed(ids, model.encode_audio(mel))  # [B, T, D]


def vk_prefill(model, ids: torch.Tensor, mel: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ANN001
    """Prompt -> filled caches and next-token logits [B, V] (what Generator does before its first step)."""
    x = vk_embed(model, ids, mel) if x is None else x
    dec = model.decoder
    with torch.inference_mode():
        state = dec.init_state(ids.shape[0], capacity=ids.shape[1] + 1)
        hidden = dec.forward_embeddings(x, state=state)  # [B, T, D]
        return dec.logits(hidden[:, -1:])[:, 0]


def vk_generate(model, ids: torch.Tensor, mel: torch.Tensor, n: int) -> list[int]:  # noqa: ANN001
    from voxkit.lm.generate import Generator
    from voxkit.lm.sampling import SamplingConfig

    x = vk_embed(model, ids, mel)
    return Generator(model.decoder, SamplingConfig(temperature=0.0)).generate(ids.tolist(), n, prompt_embeddings=x)[0]


def hf_embed(model, ids: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - transformers model
    with torch.inference_mode():
        x = model.get_input_embeddings()(ids)
        audio = model.get_audio_features(mel, return_dict=True).pooler_output
        return x.masked_scatter((ids == AUDIO_ID)[..., None], audio.to(x.dtype))  # [B, T, D]


def hf_prefill(model, ids: torch.Tensor, mel: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ANN001
    with torch.inference_mode():
        mask = torch.ones_like(ids)
        if x is None:
            out = model(input_ids=ids, input_features=mel, attention_mask=mask, use_cache=True, logits_to_keep=1)
        else:
            out = model(inputs_embeds=x, attention_mask=mask, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]


def hf_generate(model, ids: torch.Tensor, mel: torch.Tensor, n: int) -> list[int]:  # noqa: ANN001
    with torch.inference_mode():
        out = model.generate(input_ids=ids, input_features=mel, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             min_new_tokens=n, do_sample=False, pad_token_id=0, eos_token_id=None)
    return out[0, ids.shape[1]:].tolist()


def _finite(value: float) -> float | None:
    """``value`` for JSON, None where it is NaN (json.dump would write NaN, which JSON readers refuse)."""
    return None if math.isnan(value) else value


def speedup(metric: str, ours: float, ref: float) -> float:
    """voxkit's speed over transformers': a rate's quotient, or a time's (ms) inverse quotient."""
    return ref / ours if "(ms" in metric else ours / ref


def main() -> None:
    parser = Parser(prog="bench_chat.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens to decode (>= 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (median)")
    parser.add_argument("--batches", default="1,4", help="prefill batch sizes, comma-separated (default: 1,4)")
    parser.add_argument("--json", metavar="OUT", default=None, help="also write the results to this JSON file")
    opts = parser.parse_args()
    try:
        device = torch.device(opts.device)
    except RuntimeError:
        parser.error(f"--device {opts.device}: not a device (cpu, cuda or cuda:N)")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {opts.device}: only cpu and cuda are supported")
    try:
        batches = sorted({int(b) for b in opts.batches.split(",")})
    except ValueError:
        parser.error(f"--batches {opts.batches}: expected integers separated by commas, e.g. 1,4")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if opts.threads is not None and opts.threads < 1:
        parser.error(f"--threads must be >= 1, got {opts.threads}")
    if opts.new_tokens < 2 or opts.repeats < 1 or min(batches) < 1:
        parser.error("--new-tokens must be >= 2, --repeats and --batches >= 1")
    if opts.json and not os.path.isdir(os.path.dirname(os.path.abspath(opts.json))):
        parser.error(f"--json {opts.json}: its folder does not exist")
    try:
        import transformers
    except ImportError:
        parser.error("transformers is not installed (pip install transformers)")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    from voxkit.chat.checkpoint import load_chat
    from voxkit.lm.fused_step import prepare_for_inference

    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    machine = describe(device, ("transformers",))  # the first line, as every bench script's (docs/benchmarks.md)
    print(machine, flush=True)
    dtype, n = DTYPES[opts.dtype], opts.new_tokens
    with tempfile.TemporaryDirectory(prefix="bench_chat_") as folder:
        build_folder(opts.config, folder, device, dtype)
        hf = transformers.VoxtralForConditionalGeneration.from_pretrained(folder, dtype=dtype).to(device).eval()
        ours = load_chat(folder, device=device, dtype=dtype).eval()
        prepare_for_inference(ours, device)  # what AudioChat.from_pretrained runs
    hf.generation_config.eos_token_id = None  # neither library stops before N tokens
    audio, text = CONFIGS[opts.config]
    vocab, n_mels = text["vocab_size"], audio["num_mel_bins"]

    # ----- agreement
    ids, mel = make_inputs(1, vocab, n_mels, device)
    ref, out = hf_prefill(hf, ids, mel).float(), vk_prefill(ours, ids, mel).float()
    logit_diff, logit_scale = (out - ref).abs().max().item(), ref.abs().max().item()
    same_argmax = bool((out.argmax(-1) == ref.argmax(-1)).all())
    ours_tokens, hf_tokens = vk_generate(ours, ids, mel, n), hf_generate(hf, ids, mel, n)
    if len(ours_tokens) != n or len(hf_tokens) != n:
        sys.exit(f"bench_chat.py: error: expected {n} tokens, got voxkit {len(ours_tokens)}, transformers {len(hf_tokens)}")
    agree = next((i for i, (a, b) in enumerate(zip(ours_tokens, hf_tokens, strict=True)) if a != b), n)

    # ----- timing
    rows: list[tuple[str, float, float]] = []  # (metric, voxkit, transformers): rates, higher is faster; "ms": times
    for b in batches:
        ids_b, mel_b = make_inputs(b, vocab, n_mels, device)
        x_ours, x_hf = vk_embed(ours, ids_b, mel_b), hf_embed(hf, ids_b, mel_b)
        t = median_times({"vk": lambda: vk_prefill(ours, ids_b, mel_b), "hf": lambda: hf_prefill(hf, ids_b, mel_b),  # noqa: B023
                   "vk_x": lambda: vk_prefill(ours, ids_b, x=x_ours), "hf_x": lambda: hf_prefill(hf, ids_b, x=x_hf)},  # noqa: B023
                  opts.repeats, device)
        positions = b * ids_b.shape[1]
        rows.append((f"prefill b{b}, audio encoder + decoder (prompt tok/s)", positions / t["vk"], positions / t["hf"]))
        rows.append((f"prefill b{b}, decoder only (prompt tok/s)", positions / t["vk_x"], positions / t["hf_x"]))
    t = median_times({"vk": lambda: vk_generate(ours, ids, mel, n), "hf": lambda: hf_generate(hf, ids, mel, n),
               "vk1": lambda: vk_generate(ours, ids, mel, 1), "hf1": lambda: hf_generate(hf, ids, mel, 1)}, opts.repeats, device)
    rows.append(("time to first token b1 (ms; ratio inverted)", 1e3 * t["vk1"], 1e3 * t["hf1"]))
    rows.append((f"greedy decode b1, {n} tokens incl. prefill (tok/s)", n / t["vk"], n / t["hf"]))
    step = lambda a, b: (n - 1) / (a - b) if a > b else float("nan")  # noqa: E731
    rows.append(("decode b1 after first token (tok/s)", step(t["vk"], t["vk1"]), step(t["hf"], t["hf1"])))

    # ----- report
    info = {"machine": machine, "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "device": str(device), "dtype": opts.dtype, "config": opts.config,
            "load_average": [round(x, 2) for x in os.getloadavg()], "prompt_positions": int(ids.shape[1]),
            "new_tokens": n, "repeats": opts.repeats}
    a_cfg = f"encoder {audio['hidden_size']}x{audio['num_hidden_layers']} ({audio['num_attention_heads']} heads, MLP " \
            f"{audio['intermediate_size']}, {n_mels} mels)"
    t_cfg = f"decoder {text['hidden_size']}x{text['num_hidden_layers']} ({text['num_attention_heads']}/" \
            f"{text['num_key_value_heads']} heads of {text['head_dim']}, MLP {text['intermediate_size']}, vocab {vocab})"
    print(f"\n{device} {opts.dtype}, config {opts.config}: {a_cfg}, {t_cfg}; prompt {ids.shape[1]} positions (375 audio); "
          f"median of {opts.repeats} after 1 warm-up\n")
    print("| metric | voxkit | transformers | ratio |\n|---|---:|---:|---:|")
    lost = False
    for metric, ours_v, hf_v in rows:
        if math.isnan(ours_v) or math.isnan(hf_v):  # the n-token run timed no slower than the 1-token one
            lost = True
            cells = [f"{v:.1f}" if not math.isnan(v) else "-" for v in (ours_v, hf_v)]
            print(f"| {metric} | {cells[0]} | {cells[1]} | - |")
        else:
            print(f"| {metric} | {ours_v:.1f} | {hf_v:.1f} | {speedup(metric, ours_v, hf_v):.2f}x |")
    print("\nratio: voxkit's speed over transformers' (above 1: voxkit faster)")
    if lost:
        print(f"-: the {n}-token run took no longer than the 1-token run, so the rate after the first token is lost in "
              "the timing noise; give more --new-tokens or --repeats")
    print(f"prefill next-token logits: max |diff| {logit_diff:.3g} of scale {logit_scale:.3g}; same argmax: {same_argmax}")
    print(f"greedy tokens: {'all' if agree == n else f'first {agree} of'} {n} agree ({len(set(hf_tokens))} distinct)")
    if opts.json:
        result = {**info, "rows": [{"metric": m, "voxkit": _finite(v), "transformers": _finite(h), "ratio": _finite(speedup(m, v, h))}
                                   for m, v, h in rows],
                  "logit_max_diff": logit_diff, "logit_scale": logit_scale, "same_argmax": same_argmax,
                  "greedy_agree": agree, "voxkit_tokens": ours_tokens, "transformers_tokens": hf_tokens}
        try:
            with open(opts.json, "w") as f:
                json.dump(result, f, indent=1)
        except OSError as err:
            sys.exit(f"bench_chat.py: error: cannot write {opts.json}: {err.strerror}")


if __name__ == "__main__":
    main()
