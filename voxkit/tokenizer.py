"""Text tokenizers: Tekken (via mistral-common, offline) and a byte-level one for tiny models.

Both share one layout of special ids (DESIGN §3), so prompts, chat templates, stop ids and the
streaming ASR tokens go through the same code whatever the vocabulary:

    0 <unk>  1 <s> (BOS)  2 </s> (EOS)  3 [INST]  4 [/INST]  24 [AUDIO]  25 [BEGIN_AUDIO]
    32 [STREAMING_PAD]  33 [STREAMING_WORD]  34 [TRANSCRIBE]

What the shipped file holds: ``mistral_common/data/tekken_240911.json`` (version v3, 150000 BPE
ranks of which 131072 - 1000 are used, 1000 special slots) carries NO ``special_tokens`` section.
mistral-common then names only slots 0-19 (``<unk>``, ``<s>``, ``</s>``, ``[INST]``, ``[/INST]``,
tools, image, FIM, system prompt) and fills 20-999 with ``<SPECIAL_n>``. The audio/streaming slots
above are therefore built here, in code, by naming those filler slots; a folder's own
``tekken.json`` that has a ``special_tokens`` section is used as it is.

Choosing a tokenizer for a model folder (:func:`load_tokenizer`), first match wins:
  1. a ``tekken.json`` (or a single ``tekken*.json``) file in the folder;
  2. the ``tokenizer`` key of ``params.json``: ``"byte"`` for :class:`ByteTokenizer`, ``"tekken"``
     for the shipped file, or a file name relative to the folder;
  3. the shipped Tekken file.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from voxkit.errors import CheckpointError, VoxkitError

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
INST_ID = 3
END_INST_ID = 4
AUDIO_ID = 24
BEGIN_AUDIO_ID = 25
STREAMING_PAD_ID = 32
STREAMING_WORD_ID = 33
TRANSCRIBE_ID = 34

# Names of the slots voxkit relies on, as mistral-common spells them (SpecialTokens enum values).
SPECIAL_TOKENS: dict[int, str] = {
    UNK_ID: "<unk>",
    BOS_ID: "<s>",
    EOS_ID: "</s>",
    INST_ID: "[INST]",
    END_INST_ID: "[/INST]",
    AUDIO_ID: "[AUDIO]",
    BEGIN_AUDIO_ID: "[BEGIN_AUDIO]",
    STREAMING_PAD_ID: "[STREAMING_PAD]",
    STREAMING_WORD_ID: "[STREAMING_WORD]",
    TRANSCRIBE_ID: "[TRANSCRIBE]",
}

SHIPPED_TEKKEN = "tekken_240911.json"

Message = Mapping[str, str]  # {"role": "user" | "assistant" | "system", "content": "..."}


@runtime_checkable
class Tokenizer(Protocol):
    """What models, generation and the CLI need from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    def encode(self, text: str, *, bos: bool = True, eos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (b"" for special tokens): lets callers decode incrementally,
        since a single token may hold only part of a multi-byte UTF-8 character."""
        ...

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        """``<s>[INST] user [/INST] assistant</s>[INST] user [/INST]``, ready for generation."""
        ...


def _check_chat(messages: Sequence[Message]) -> None:
    if not messages:
        raise VoxkitError("a chat needs at least one message")
    turns = [m["role"] for m in messages if m["role"] != "system"]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if turns != expected or turns[-1] != "user":
        raise VoxkitError(f"chat roles must alternate user/assistant and end with user, got {turns}")


class ByteTokenizer:
    """UTF-8 bytes after ``NUM_SPECIAL`` special slots, for tiny models and tests.

    The special slots sit at the same ids as in Tekken, and the chat template has the same layout
    as Tekken v3 (a system prompt is prepended to the last user message, as mistral-common does).
    """

    NUM_SPECIAL = 64

    @property
    def vocab_size(self) -> int:
        return self.NUM_SPECIAL + 256

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    def encode(self, text: str, *, bos: bool = True, eos: bool = False) -> list[int]:
        ids = [b + self.NUM_SPECIAL for b in text.encode("utf-8")]
        return [BOS_ID] * bos + ids + [EOS_ID] * eos

    def token_bytes(self, token_id: int) -> bytes:
        return bytes([token_id - self.NUM_SPECIAL]) if token_id >= self.NUM_SPECIAL else b""

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        _check_chat(messages)
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        ids = [BOS_ID]
        for i, m in enumerate(turns):
            if m["role"] == "user":
                text = f"{system}\n\n{m['content']}" if system and i == len(turns) - 1 else m["content"]
                ids += [INST_ID, *self.encode(text, bos=False), END_INST_ID]
            else:
                ids += [*self.encode(m["content"], bos=False), EOS_ID]
        return ids


class TekkenTokenizer:
    """Tekken BPE through mistral-common; chat encoding is mistral-common's instruct tokenizer."""

    def __init__(self, mistral_tokenizer: object) -> None:
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        assert isinstance(mistral_tokenizer, MistralTokenizer)
        self.mistral = mistral_tokenizer
        inner = mistral_tokenizer.instruct_tokenizer.tokenizer
        if not isinstance(inner, Tekkenizer):
            raise CheckpointError("only Tekken (tiktoken-based) tokenizer files are supported")
        self.tekken = inner

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TekkenTokenizer:
        """A folder's own tokenizer file, used as published (its special slots included)."""
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        try:
            return cls(MistralTokenizer.from_file(str(path)))
        except (OSError, ValueError, KeyError, AssertionError) as err:
            raise CheckpointError(f"cannot read tokenizer file {path}: {err}") from err

    @classmethod
    def shipped(cls) -> TekkenTokenizer:
        """The Tekken file inside the mistral-common wheel, with the audio/streaming slots named."""
        return _shipped_tekken()

    @property
    def vocab_size(self) -> int:
        return self.tekken.n_words

    @property
    def bos_id(self) -> int:
        return self.tekken.bos_id

    @property
    def eos_id(self) -> int:
        return self.tekken.eos_id

    def special_id(self, name: str) -> int:
        """Id of a named special token such as ``"[TRANSCRIBE]"``."""
        return self.tekken.get_special_token(name)

    def encode(self, text: str, *, bos: bool = True, eos: bool = False) -> list[int]:
        return self.tekken.encode(text, bos=bos, eos=eos)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tekken.decode(list(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self.tekken.id_to_byte_piece(token_id)

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        _check_chat(messages)
        kinds = {"user": UserMessage, "assistant": AssistantMessage, "system": SystemMessage}
        request = ChatCompletionRequest(messages=[kinds[m["role"]](content=m["content"]) for m in messages])
        return list(self.mistral.encode_chat_completion(request).tokens)


@functools.lru_cache(maxsize=1)
def _shipped_tekken() -> TekkenTokenizer:
    """Build the shipped Tekken with voxkit's audio/streaming slots (cached: loading takes ~0.5 s)."""
    import mistral_common
    from mistral_common.protocol.instruct.normalize import get_normalizer
    from mistral_common.protocol.instruct.validator import ValidationMode, get_validator
    from mistral_common.tokens.tokenizers.base import TokenizerVersion
    from mistral_common.tokens.tokenizers.instruct import InstructTokenizerV3
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / SHIPPED_TEKKEN
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    config = data["config"]
    specials = [dict(t) for t in Tekkenizer.DEPRECATED_SPECIAL_TOKENS]
    n_special = config["default_num_special_tokens"]
    for rank in range(len(specials), n_special):
        name = SPECIAL_TOKENS.get(rank, Tekkenizer.SPECIAL_TOKEN_TEMPLATE.format(id=rank))
        specials.append({"rank": rank, "token_str": name, "is_control": True})
    for rank, name in SPECIAL_TOKENS.items():  # the named low slots must already agree
        assert specials[rank]["token_str"] == name, (rank, specials[rank], name)
    tekken = Tekkenizer(
        data["vocab"],
        specials,  # type: ignore[arg-type]
        pattern=config["pattern"],
        vocab_size=config["default_vocab_size"],
        num_special_tokens=n_special,
        version=TokenizerVersion(config["version"]),
        name="tekken_240911_voxkit",
    )
    mistral = MistralTokenizer(
        InstructTokenizerV3(tekken),
        validator=get_validator(tekken.version, mode=ValidationMode.test),
        request_normalizer=get_normalizer(tekken.version, None),
    )
    return TekkenTokenizer(mistral)


def load_tokenizer(model_dir: str | os.PathLike[str]) -> Tokenizer:
    """The tokenizer of a model folder (rule in the module docstring)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    named = folder / "tekken.json"
    candidates = [named] if named.is_file() else sorted(folder.glob("tekken*.json"))
    if len(candidates) == 1:
        return TekkenTokenizer.from_file(candidates[0])
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise CheckpointError(f"several tokenizer files in {folder} ({names}); name one tekken.json")
    params = folder / "params.json"
    choice = None
    if params.is_file():
        try:
            with open(params, encoding="utf-8") as fh:
                choice = json.load(fh).get("tokenizer")
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"cannot read {params}: {err}") from err
    if choice is None or choice == "tekken":
        return TekkenTokenizer.shipped()
    if choice == "byte":
        return ByteTokenizer()
    if isinstance(choice, str) and (folder / choice).is_file():
        return TekkenTokenizer.from_file(folder / choice)
    raise CheckpointError(f"{params}: unknown tokenizer {choice!r} (expected 'byte', 'tekken' or a file in the folder)")
