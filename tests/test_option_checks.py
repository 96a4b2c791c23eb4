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
