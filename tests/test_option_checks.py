"""Sampling and generation options are checked when given, with one clear error.

NaN slipped through "< 0" checks and reached a softmax (torch's "probability tensor contains
inf, nan"); a seed of 2^64 overflowed inside torch; a bad TTS temperature surfaced only at the
first frame of a stream; a prompt longer than the TTS context was a bare ValueError.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import one_line_error, run_cli
from voxkit.errors import OptionError, VoxkitError
from voxkit.lm.sampling import SamplingConfig, check_seed

sys.path.insert(0, str(Path(__file__).parent))
from tts_helpers import tiny_tts_folder  # noqa: E402


@pytest.mark.parametrize("kwargs", [dict(temperature=math.nan), dict(temperature=math.inf), dict(temperature=-1.0),
                                    dict(temperature=1.0, top_p=math.nan), dict(temperature=1.0, top_k=2.5), dict(temperature="1")])
def test_sampling_config_refuses(kwargs: dict) -> None:
    with pytest.raises(OptionError):
        SamplingConfig(**kwargs)
    with pytest.raises(ValueError):  # still a ValueError for library callers
        SamplingConfig(**kwargs)


def test_seeds() -> None:
    assert check_seed(0) == 0 and check_seed(2**64 - 1) == 2**64 - 1 and check_seed(np.int64(7)) == 7
    for bad in (-1, 2**64, 10**20, 1.5, "a", True):
        with pytest.raises(OptionError, match="seed"):
            check_seed(bad)


@pytest.fixture(scope="module")
def tts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("tts_options"))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(temperature=math.nan), "temperature"), (dict(temperature=-1.0), "temperature"), (dict(cfg=math.nan), "cfg"),
    (dict(steps=2.5), "steps"), (dict(seed=2**64), "seed"), (dict(seed="a"), "seed"),
])
def test_speaker_checks_options_before_the_first_frame(tts: Path, kwargs: dict, message: str) -> None:
    from voxkit.tts.api import Speaker

    speaker = Speaker.from_pretrained(tts)
    with pytest.raises(VoxkitError, match=message):
        speaker.stream("Hi.", **kwargs)  # raised at the call, not when the stream is iterated


def test_long_words_are_cut_to_the_piece_limit(tts: Path) -> None:
    from voxkit.tts.api import MAX_SENTENCE_CHARS, Speaker

    pieces = Speaker.from_pretrained(tts).sentences("a" * 1000 + " end.")
    assert max(len(p) for p in pieces) <= MAX_SENTENCE_CHARS and "".join(pieces).replace(" ", "") == "a" * 1000 + "end."


def test_a_prompt_longer_than_the_context_is_one_line_and_leaves_no_file(tts: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.wav"
    long_reference = "word " * 200  # the reference text alone outgrows the tiny model's 512 positions
    code, _, err = run_cli(["speak", "Hi.", "--model", str(tts), "--voice", "demo", "--reference-text", long_reference,
                            "--stream", "-o", str(out)], capsys)
    assert code == 2 and "the model's context" in one_line_error(err)
    assert not out.exists()


@pytest.mark.parametrize(("kwargs", "message"), [(dict(temperature=math.nan), "temperature"), (dict(seed=2**70), "seed")])
def test_chat_checks_options_before_the_first_token(kwargs: dict, message: str) -> None:
    from tests.test_chat_api import make_chat

    chat = make_chat()
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(VoxkitError, match=message):
        chat.generate(messages, max_new_tokens=2, **kwargs)
    with pytest.raises(VoxkitError, match=message):
        chat.stream(messages, max_new_tokens=2, **kwargs)


def test_a_tiny_temperature_samples_the_most_likely_token() -> None:
    """1e-45 passes the >= 0 check; dividing the raw logits by it overflowed to inf and NaN."""
    import torch

    from voxkit.lm.sampling import sample_next

    logits = torch.tensor([[0.5, 3.0, -1.0], [2.0, 0.0, 1.9]])
    for extra in ({}, {"top_k": 2}, {"top_p": 0.9}):
        config = SamplingConfig(temperature=1e-45, **extra)
        assert sample_next(logits, config, torch.Generator().manual_seed(0)).tolist() == [1, 0]


def test_generation_lengths_are_checked_before_the_buffers() -> None:
    """-1 reached torch.zeros; 10^10 on a full-attention model sized a 640 GB KV cache."""
    from tests.test_generate import tiny_model
    from voxkit.lm.generate import Generator

    full = Generator(tiny_model(sliding_window=None))
    with pytest.raises(OptionError, match="max_new_tokens must be >= 1"):
        full.generate([[5]], -1)
    with pytest.raises(OptionError, match="output tokens would not fit in memory"):
        full.generate([[5]], 10**10)
    with pytest.raises(OptionError, match="the KV cache of 1 x 10000000001 positions would not fit in memory"):
        next(full.stream([[5]], 10**10))


def test_generate_refuses_a_model_with_more_ids_than_its_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sampled id past the byte tokenizer's 320 ended in ByteTokenizer's ValueError mid-output."""
    import json

    import torch
    from safetensors.torch import save_file

    from voxkit.lm import Transformer, TransformerArgs

    args = TransformerArgs(dim=32, n_layers=1, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=2000, rope_theta=1e4)
    args.extra["tokenizer"] = "byte"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in Transformer(args).state_dict().items()}, str(tmp_path / "consolidated.safetensors"))
    (tmp_path / "params.json").write_text(json.dumps(args.to_dict()))
    code, _, err = run_cli(["generate", "--model", str(tmp_path), "--max-tokens", "3", "Hi"], capsys)
    assert code == 2 and "the model has 2000 ids but its tokenizer only" in one_line_error(err)
