"""Python API for audio chat, in the conventions of transformers and vLLM.

    >>> import voxkit
    >>> chat = voxkit.AudioChat.from_pretrained("path/to/model")
    >>> chat.generate([{"role": "user", "content": [
    ...     {"type": "audio", "path": "talk.wav"},
    ...     {"type": "text", "text": "How many words are spoken?"}]}])
    '12'
    >>> for delta in chat.stream(messages):      # text deltas as they are generated
    ...     print(delta, end="", flush=True)
    >>> chat.transcribe("talk.wav", language="en")   # a path, an open file, its bytes, or samples

A loaded model is shared and read-only: every call keeps its caches in its own state, so calls
may interleave (one at a time: not thread-safe). A list of conversations is one batch.

Integer options (``max_new_tokens``, ``seed``, ``max_audios``, ``sample_rate``) take Python or numpy
integers, as every voxkit API does; bools and floats are refused rather than truncated.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from voxkit.audio.io import AudioInput, load_input
from voxkit.chat.messages import AudioPart, ChatTurn, TextPart, parse_messages
from voxkit.chat.model import ChatModel
from voxkit.chat.template import SAMPLE_RATE, audio_parts, audio_spans, check_language, encode_chat, encode_transcription
from voxkit.checks import weight_dtype, whole_number
from voxkit.devices import usable_device
from voxkit.errors import VoxkitError
from voxkit.tokenizer import Tokenizer

Messages = Sequence[Mapping[str, Any]]
DEFAULT_MAX_AUDIOS = 8  # audios per conversation; each 30 s costs 375 prompt positions
BUNDLED = Path(__file__).resolve().parent.parent / "assets" / "chat-tiny"


def default_model_dir() -> Path:
    if not (BUNDLED / "params.json").is_file():
        raise VoxkitError(
            "no audio-chat model is bundled with this voxkit yet: pass a model folder "
            "(voxkit.AudioChat.from_pretrained(DIR) / voxkit chat --model DIR), e.g. one trained with recipes/chat_tiny.toml "
            "and exported with voxkit export chat"
        )
    return BUNDLED


class AudioChat:
    """A chat model and its tokenizer: answers questions about audio, transcribes, chats in text."""

    def __init__(self, model: ChatModel, tokenizer: Tokenizer, *, max_audios: int = DEFAULT_MAX_AUDIOS) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_audios = whole_number(max_audios, "max_audios", 0)
        if tokenizer.vocab_size > model.args.decoder.vocab_size:
            raise VoxkitError(f"tokenizer of {tokenizer.vocab_size} ids for a model of {model.args.decoder.vocab_size}")

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = torch.float32,
        max_audios: int = DEFAULT_MAX_AUDIOS,
    ) -> AudioChat:
        """Load a published (params.json), transformers (config.json) or voxkit folder; None: the bundled model.

        dtype: the weights' precision in memory (default float32, what CPUs compute fastest; a
        folder stored in 16 bits is widened), as a torch dtype or its name ("float16"); None or
        "auto" keeps each weight's stored precision."""
        from voxkit.chat.checkpoint import load_chat
        from voxkit.lm.fused_step import prepare_for_inference
        from voxkit.subset_tokenizer import load_folder_tokenizer

        usable_device(device, "device")
        dtype = weight_dtype(dtype)
        folder = default_model_dir() if model_dir is None else Path(model_dir)
        model = load_chat(folder, device=device, dtype=dtype)
        prepare_for_inference(model, device)  # the fused step for the decoder's token-by-token steps
        return cls(model, load_folder_tokenizer(folder), max_audios=max_audios)

    # ----------------------------------------------------------------------------- prompts

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (and where it computes)."""
        return self.model.decoder.activation_weight.device

    def _audio_vectors(self, audios: Sequence[AudioPart]) -> torch.Tensor | None:
        if not audios:
            return None
        with torch.inference_mode():
            mel = self.model.mel_chunks([a.samples.to(self.device) for a in audios])  # [N, n_mels, F]
            return self.model.encode_audio(mel)  # [N * tokens_per_chunk, D]

    def _chat_prompt(self, messages: Messages) -> tuple[list[int], list[AudioPart]]:
        turns = parse_messages(messages, max_audios=self.max_audios)
        ids = encode_chat(turns, self.tokenizer, audio_tokens=lambda part: self.model.audio_token_count(part.samples.shape[-1]))
        return ids, audio_parts(turns)

    def _batch(self, prompts: Sequence[tuple[list[int], list[AudioPart]]]) -> tuple[list[list[int]], torch.Tensor]:
        """Token prompts and their right-padded input embeddings [B, Tmax, D], audio in place."""
        for index, prompt in enumerate(prompts):
            self._check_length(*prompt, "the conversation" if len(prompts) == 1 else f"conversation {index} of the batch")
        ids = [p[0] for p in prompts]
        longest = max(len(p) for p in ids)
        tokens = torch.zeros(len(ids), longest, dtype=torch.long)  # [B, Tmax] right-padded with 0 (never [AUDIO])
        for b, p in enumerate(ids):  # prompt setup, not a decode loop
            tokens[b, : len(p)] = torch.tensor(p, dtype=torch.long)
        audio = self._audio_vectors([a for p in prompts for a in p[1]])
        with torch.inference_mode():
            return ids, self.model.embed(tokens.to(self.device), audio)  # [B, Tmax, D]

    def _check_length(self, ids: Sequence[int], clips: Sequence[AudioPart], what: str) -> None:
        """Refuse a prompt the decoder cannot read, saying whether its text, its audio or both are too long.

        One position must stay free for the reply, so a model of ``max_seq_len`` N reads N - 1."""
        limit = self.model.args.decoder.max_seq_len
        if not limit or len(ids) < limit:
            return
        most = limit - 1
        audio = sum(length for _, length in audio_spans(ids))  # [AUDIO] positions; markers count as text
        text = len(ids) - audio
        if not audio:
            raise VoxkitError(f"{what} is too long: its text takes {text} positions, this model reads at most {most} (shorten the text)")
        seconds = sum(int(c.samples.shape[-1]) for c in clips) / SAMPLE_RATE
        fix = {(True, True): "the text and the audio", (True, False): "the text", (False, True): "the audio"}.get(
            (text > most, audio > most), "the text or the audio")  # neither alone is too long: together they are
        raise VoxkitError(f"{what} is too long: {len(ids)} positions ({text} of text, {audio} of audio for {seconds:.1f} s), "
                          f"this model reads at most {most} (shorten {fix})")

    def _generator(self, temperature: float, top_p: float | None):  # noqa: ANN202 - voxkit.lm.Generator
        """Options are checked here, before a stream's first token (OptionError is a VoxkitError)."""
        from voxkit.lm.generate import Generator
        from voxkit.lm.sampling import SamplingConfig

        sampling = SamplingConfig(temperature=temperature, top_p=top_p)
        return Generator(self.model.decoder, sampling, stop_ids=[self.tokenizer.eos_id])

    def _budget(self, ids: Sequence[Sequence[int]], max_new_tokens: int) -> tuple[int, list[int]]:
        """(steps of the run, each conversation's own cap). max_new_tokens is an upper bound: a reply
        also stops where the model's context ends after ITS prompt, so a conversation batched beside
        a longer one gets the reply it gets alone (:meth:`_check_length` left each at least one)."""
        limit = self.model.args.decoder.max_seq_len
        caps = [max_new_tokens if not limit else min(max_new_tokens, limit - len(p)) for p in ids]
        return max(caps), caps

    # ----------------------------------------------------------------------------- public API

    def generate(
        self,
        messages: Messages | Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> str | list[str]:
        """The assistant's reply to one conversation (a list of messages), or a list of replies to a
        batch (a list of conversations). temperature 0 is greedy.

        ``seed`` seeds each conversation's own generator, as vLLM seeds a request: a conversation's
        sampled reply is the same alone or in any batch. A list gives each conversation of a batch
        its own seed (one per conversation); one number seeds them all alike."""
        from voxkit.lm.sampling import row_seeds

        max_new_tokens = whole_number(max_new_tokens, "max_new_tokens", 1)
        batch = _is_batch(messages)
        conversations = list(messages) if batch else [messages]
        if not conversations:
            raise VoxkitError("no conversations given")
        # a batch takes one seed or a list of one per conversation; one conversation takes one seed
        seed = row_seeds(seed, len(conversations)) if batch and seed is not None else _seed(seed)
        prompts = []
        for index, conversation in enumerate(conversations):
            try:
                prompts.append(self._chat_prompt(conversation))  # type: ignore[arg-type]
            except VoxkitError as err:  # "message 2, part 0: ..." must say which conversation it is in
                if not batch:
                    raise
                raise type(err)(f"conversation {index} of the batch: {err}") from None
        ids, x = self._batch(prompts)
        steps, caps = self._budget(ids, max_new_tokens)
        out = self._generator(temperature, top_p).generate(ids, steps, seed=seed, prompt_embeddings=x, limits=caps)
        replies = [self.tokenizer.decode(o) for o in out]
        return replies if batch else replies[0]

    def stream(
        self,
        messages: Messages,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Text deltas of the reply to one conversation, as they are generated (whole UTF-8 characters).

        Bad messages and options raise here, at the call, not at the first delta."""
        max_new_tokens = whole_number(max_new_tokens, "max_new_tokens", 1)
        seed = _seed(seed)
        if _is_batch(messages):
            raise VoxkitError("stream() takes one conversation; use generate() for a batch")
        ids, x = self._batch([self._chat_prompt(messages)])
        generator = self._generator(temperature, top_p)
        steps, _ = self._budget(ids, max_new_tokens)
        return self._deltas(generator.stream(ids, steps, seed=seed, prompt_embeddings=x))

    def _deltas(self, steps: Iterator) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for step in steps:
            token = step[0]
            if token is None:
                continue
            delta = decoder.decode(self.tokenizer.token_bytes(token))
            if delta:
                yield delta
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def transcribe(
        self,
        audio: AudioInput,
        *,
        language: str | None = "en",
        sample_rate: int = SAMPLE_RATE,
        max_new_tokens: int = 448,
    ) -> str:
        """The transcription request (``lang:xx[TRANSCRIBE]``) of one audio, greedy.

        ``audio`` is what :meth:`voxkit.Transcriber.transcribe` takes, read by the same function
        (``voxkit.audio.io.load_input``), so both APIs accept and refuse the same inputs with the same
        words: a file (a path, an open binary file, or its bytes) of any rate and channels, or
        samples (numpy, torch) at ``sample_rate`` Hz."""
        max_new_tokens = whole_number(max_new_tokens, "max_new_tokens", 1)
        check_language(language)
        clip = AudioPart(load_input(audio, sample_rate, SAMPLE_RATE, "transcribe()"))  # [T] at 16 kHz
        ids = encode_transcription(self.model.audio_token_count(clip.samples.shape[-1]), self.tokenizer, language=language)
        self._check_length(ids, [clip], "the transcription request")
        tokens, x = self._batch([(ids, [clip])])
        steps, _ = self._budget(tokens, max_new_tokens)
        out = self._generator(0.0, None).generate(tokens, steps, prompt_embeddings=x)
        return self.tokenizer.decode(out[0]).strip()


def _seed(seed: object) -> int | None:
    """A seed checked as :mod:`voxkit.lm.sampling` does (numpy integers included), as a Python int."""
    from voxkit.lm.sampling import check_seed

    return None if seed is None else check_seed(seed)


def _is_batch(messages: Any) -> bool:
    """A batch is a list of conversations: its first item is itself a list, not a message mapping."""
    return isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)) and len(messages) > 0 and \
        isinstance(messages[0], Sequence) and not isinstance(messages[0], (str, bytes, Mapping))


__all__ = ["AudioChat", "ChatTurn", "TextPart", "AudioPart", "default_model_dir"]
