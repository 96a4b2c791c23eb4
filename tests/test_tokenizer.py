"""Tekken (shipped with mistral-common, offline) and the byte tokenizer share one special layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from voxkit.errors import CheckpointError, VoxkitError
from voxkit.tokenizer import (
    AUDIO_ID,
    BEGIN_AUDIO_ID,
    BOS_ID,
    END_INST_ID,
    EOS_ID,
    INST_ID,
    SPECIAL_TOKENS,
    STREAMING_PAD_ID,
    STREAMING_WORD_ID,
    TRANSCRIBE_ID,
    ByteTokenizer,
    TekkenTokenizer,
    Tokenizer,
    load_tokenizer,
)

MULTILINGUAL = [
    "Hello, world! How are you today?",
    "Voilà l'été : déjà 30 °C à Paris.",
    "Größenwahn über Ärger — ß.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "नमस्ते दुनिया 🙂 emoji 🎙️ and tabs\tand\nnewlines",
]

CHAT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "How are you?"},
]


@pytest.fixture(scope="module")
def tekken() -> TekkenTokenizer:
    return TekkenTokenizer.shipped()


@pytest.mark.parametrize("text", MULTILINGUAL)
def test_tekken_round_trip(tekken: TekkenTokenizer, text: str) -> None:
    ids = tekken.encode(text, bos=True, eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert all(1000 <= i < tekken.vocab_size for i in ids[1:-1])  # text never lands on special slots
    assert tekken.decode(ids) == text
    assert b"".join(tekken.token_bytes(i) for i in ids).decode("utf-8") == text


def test_tekken_special_ids(tekken: TekkenTokenizer) -> None:
    assert tekken.vocab_size == 131072
    assert (tekken.bos_id, tekken.eos_id) == (1, 2)
    expected = {
        "<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[AUDIO]": 24, "[BEGIN_AUDIO]": 25,
        "[STREAMING_PAD]": 32, "[STREAMING_WORD]": 33, "[TRANSCRIBE]": 34,
    }
    assert {name: tekken.special_id(name) for name in expected} == expected
    assert (AUDIO_ID, BEGIN_AUDIO_ID, STREAMING_PAD_ID, STREAMING_WORD_ID, TRANSCRIBE_ID) == (24, 25, 32, 33, 34)
    # Special tokens are never produced from text and decode to nothing.
    assert tekken.encode("[INST][TRANSCRIBE]", bos=False) != [INST_ID, TRANSCRIBE_ID]
    assert tekken.decode([BOS_ID, TRANSCRIBE_ID, EOS_ID]) == ""
    assert tekken.token_bytes(STREAMING_PAD_ID) == b""


def test_tekken_chat_template_exact_ids(tekken: TekkenTokenizer) -> None:
    # <s>[INST]Hi[/INST]Hello!</s>[INST]How are you?[/INST]  (Tekken v3: no spaces around [INST])
    ids = tekken.encode_chat(CHAT)
    assert ids == [1, 3, 37133, 4, 22177, 1033, 2, 3, 7801, 1584, 1636, 1063, 4]
    assert ids[2:3] == tekken.encode("Hi", bos=False)
    assert ids[4:6] == tekken.encode("Hello!", bos=False)


def test_byte_tokenizer_round_trip_and_layout() -> None:
    tok = ByteTokenizer()
    assert isinstance(tok, Tokenizer)
    assert tok.vocab_size == ByteTokenizer.NUM_SPECIAL + 256
    for text in MULTILINGUAL:
        ids = tok.encode(text, bos=True, eos=True)
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID
        assert len(ids) == len(text.encode("utf-8")) + 2
        assert tok.decode(ids) == text
    assert max(SPECIAL_TOKENS) < ByteTokenizer.NUM_SPECIAL
    hi, hello = tok.encode("Hi", bos=False), tok.encode("Hello!", bos=False)
    how = tok.encode("How are you?", bos=False)
    assert tok.encode_chat(CHAT) == [BOS_ID, INST_ID, *hi, END_INST_ID, *hello, EOS_ID, INST_ID, *how, END_INST_ID]


def test_system_prompt_goes_into_last_user_turn_for_both(tekken: TekkenTokenizer) -> None:
    chat = [{"role": "system", "content": "Be brief."}, *CHAT]
    for tok in (tekken, ByteTokenizer()):
        ids = tok.encode_chat(chat)
        last_user = ids[ids.index(INST_ID, 2) + 1 : -1]
        assert tok.decode(last_user) == "Be brief.\n\nHow are you?"


@pytest.mark.parametrize("bad", [[], [{"role": "assistant", "content": "x"}], CHAT[:2]])
def test_bad_chats_are_user_errors(bad: list[dict[str, str]]) -> None:
    with pytest.raises(VoxkitError):
        ByteTokenizer().encode_chat(bad)


def test_load_tokenizer_rule(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "params.json").write_text(json.dumps({"dim": 8, "tokenizer": "byte"}))
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    (tmp_path / "params.json").write_text(json.dumps({"dim": 8}))
    assert load_tokenizer(tmp_path) is TekkenTokenizer.shipped()  # fallback: the shipped file
    (tmp_path / "params.json").write_text(json.dumps({"tokenizer": "nope"}))
    with pytest.raises(CheckpointError, match="unknown tokenizer"):
        load_tokenizer(tmp_path)
    # A folder's own tekken.json wins over params.json and is used as published.
    import mistral_common

    shutil.copy(Path(mistral_common.__file__).parent / "data" / "tekken_240718.json", tmp_path / "tekken.json")
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, TekkenTokenizer) and tok is not TekkenTokenizer.shipped()
    assert tok.decode(tok.encode("Bonjour")) == "Bonjour"
