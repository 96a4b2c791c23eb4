"""A tiny random-weight TTS model folder (with its codec and one preset voice) for fast CPU tests.

Its speech is noise; what the tests check is the machinery: prompts, sampling, stopping, streaming,
folders, errors.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from ports import free_port
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import save_codec
from voxkit.codec.model import CodecModel
from voxkit.lm import TransformerArgs
from voxkit.tts.args import TTSArgs, flow_stack
from voxkit.tts.checkpoint import save_tts, save_voice
from voxkit.tts.model import TTSModel

CODEC = dict(dim=32, hidden_dim=64, head_dim=8, n_heads=4, n_kv_heads=2, semantic_codebook_size=64, semantic_dim=16, acoustic_dim=4,
             acoustic_codebook_size=5)


def tiny_tts_args(**overrides: object) -> TTSArgs:
    backbone = TransformerArgs(dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=320, rope_theta=1e4,
                               tied_embeddings=True, max_seq_len=512)
    base: dict[str, object] = dict(backbone=backbone, flow=flow_stack(dim=16, n_layers=2, n_heads=2), semantic_codebook_size=64,
                                   acoustic_dim=4, acoustic_levels=5, max_reference_frames=40, languages=("en", "fr"))
    base.update(overrides)
    return TTSArgs(**base)  # type: ignore[arg-type]


def tiny_tts_folder(path: Path, seed: int = 0) -> Path:
    """Write a random tiny TTS folder at ``path`` (byte tokenizer, codec/ sub-folder, preset voice "demo")."""
    torch.manual_seed(seed)
    path = Path(path)
    save_codec(CodecModel(CodecArgs(**CODEC)), path / "codec")  # type: ignore[arg-type]
    model = TTSModel(tiny_tts_args())
    save_tts(model, path)
    params = json.loads((path / "params.json").read_text())
    params["tokenizer"] = "byte"
    (path / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    codes = torch.cat([torch.randint(0, 64, (30, 1)), torch.randint(0, 5, (30, 4))], dim=1)  # [30, 37-like]
    save_voice(path, "demo", codes, text="A preset voice.", origin="random codes (tests)")
    return path


class _NeverEnds(torch.nn.Module):
    """A semantic head whose [END_AUDIO] logit is -inf."""

    def __init__(self, head: torch.nn.Module, end_id: int) -> None:
        super().__init__()
        self.head = head
        self.end_id = end_id

    @property
    def weight(self) -> torch.Tensor:  # the generator reads the head's device from it
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)  # [..., S]
        logits[..., self.end_id] = float("-inf")
        return logits


@contextlib.contextmanager
def never_ending(model: TTSModel) -> Iterator[None]:
    """Within: ``model`` never draws [END_AUDIO], so only the context or the frame cap ends a take.

    Why: a random model draws its end code at any frame with some chance, so a test of what happens
    when the context ends a take would otherwise hold for some seeds only.
    """
    head = model.semantic_head
    model.semantic_head = _NeverEnds(head, model.args.end_audio_id)
    try:
        yield
    finally:
        model.semantic_head = head


def load_screenshot_script() -> ModuleType:
    """scripts/screenshot_tts_demo.py as a module: it drives the browser for the docs' screenshot,
    and the demo's browser tests drive the page with it."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_tts_demo.py"
    spec = importlib.util.spec_from_file_location("screenshot_tts_demo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def served_demo(demo: ModuleType, speaker: object) -> Iterator[str]:
    """The demo app of ``speaker`` served on a free port (not blocking); its URL, closed after."""
    app = demo.build_app(speaker)
    url = demo.launch(app, port=free_port(), block=False)
    try:
        yield url
    finally:
        app.close()
