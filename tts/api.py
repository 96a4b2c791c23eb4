"""Python API of the voice-cloning TTS: ``voxkit.Speaker``.

    >>> from voxkit import Speaker
    >>> speaker = Speaker.from_pretrained()                    # the bundled model (or a folder)
    >>> audio, sr = speaker.speak("Hello there.", voice="ref.wav", seed=1)
    >>> for chunk in speaker.stream("A longer text. In two sentences.", voice=speaker.voices[0]):
    ...     play(chunk)                                         # float32 at 24 kHz, 80 ms at a time

A voice is a preset name, any audio file voxkit reads, an array with its rate, or a :class:`Voice`
made once by :meth:`Speaker.prepare_voice` (which checks the reference and says what it changed).
The loaded model is shared and read-only: every call owns its generation and decoder state, so
threads may speak at once. Long text is split at sentence boundaries (:mod:`voxkit.tts.sentences`);
each sentence is generated from the same voice prompt, faded in and out over a few milliseconds and
joined by a short pause, which is what keeps the joins free of clicks.

Every sentence's prompt (voice prompt + text) is measured before the first frame: a sentence that
would not leave room in the model's context for its speech is split further, and a text that cannot
be fitted is refused before any audio. A sentence cut short all the same (the context filled up
before the model ended it) is said with a ``UserWarning``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from voxkit.audio.io import AudioInput, load_head
from voxkit.checks import is_number, unicode_problem, weight_dtype
from voxkit.devices import usable_device
from voxkit.errors import AudioError, CheckpointError, OptionError, VoxkitError, warn
from voxkit.lm.sampling import check_seed
from voxkit.tts.checkpoint import list_voices, load_tts, load_voice
from voxkit.tts.generate import GenerationOptions, context_positions, generate_frames
from voxkit.tts.model import Prompt, TTSModel
from voxkit.tts.sentences import split_sentences, wrap

BUNDLED = Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "tts-tiny"
MIN_REFERENCE_S = 1.0  # shorter references are refused: too little of the voice to copy
SHORT_REFERENCE_S = 3.0  # below this a reference works but is flagged
MAX_REFERENCE_S = 30.0
SILENT_PEAK = 1e-3  # a reference whose loudest sample is below this (-60 dBFS) is silence
FADE_S = 0.01  # fade in and out of every sentence
PAUSE_S = 0.2  # silence between sentences
MAX_SENTENCE_CHARS = 250
# Speech the context must hold beside a sentence's prompt. A sentence is split so that its speech fits at
# an unhurried reading pace; it is refused only where even its first MIN_PIECE_CHARS would not fit
# read at a pace nobody reads aloud at (the voice prompt then leaves no room for real sentences).
PACE_CHARS_PER_S = 12.0
FASTEST_CHARS_PER_S = 20.0
MIN_PIECE_CHARS = 40


@dataclasses.dataclass
class Voice:
    """A prepared voice prompt: codec frames [R, 37] and what the checks found."""

    codes: torch.Tensor  # [R, 37] int64
    text: str | None = None  # the reference's transcript, when known
    name: str = "reference"
    duration: float = 0.0  # seconds of reference used
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Piece:
    """A piece of text as it is generated: its token ids, and the frames the model's context leaves
    after its prompt (None: no limit)."""

    text: str
    ids: list[int]
    room: int | None


class Speaker:
    """A loaded TTS model with its codec and tokenizer; shared by any number of calls."""

    def __init__(self, model: TTSModel, codec: object, tokenizer: object, folder: Path) -> None:
        self.model = model.eval()
        self.codec = codec  # voxkit.codec.Codec
        self.tokenizer = tokenizer
        self.folder = folder
        self._local = threading.local()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = "float32",
    ) -> Speaker:
        """Load a TTS folder (default: the bundled model).

        ``dtype``: the weights' precision in memory, the TTS model's and its codec's alike, as
        ``voxkit.Transcriber`` takes it (a torch dtype or its name; None or "auto": each as its
        folder stores it). float32 is the default because a CPU computes it fastest (a folder
        stored in 16 bits is widened); bfloat16 or float16 halve a GPU's memory and traffic. The
        codec's quantizer stays float32 (:meth:`Codec.from_pretrained
        <voxkit.codec.api.Codec.from_pretrained>`), and the audio comes out as float32 whatever
        ``dtype`` is.
        """
        from voxkit.checkpoint import detect_layout, recorded_tokenizer
        from voxkit.codec.api import Codec
        from voxkit.lm.fused_step import prepare_for_inference
        from voxkit.subset_tokenizer import load_folder_tokenizer

        dtype = weight_dtype(dtype)
        usable_device(device, "device")
        folder = Path(path) if path is not None else BUNDLED
        if path is None and not (folder / "params.json").is_file():
            raise VoxkitError(f"no bundled TTS model in this install ({folder}); pass a model folder (see docs/tts.md)")
        model, codec_folder = load_tts(folder, device=device, dtype=dtype)
        prepare_for_inference(model, device)  # the fused step for the backbone's frame-by-frame steps
        if not codec_folder.is_dir():
            raise CheckpointError(f"{folder}: its codec folder {codec_folder} is missing")
        tokenizer = (recorded_tokenizer(folder) if detect_layout(folder) == "training" else None) or load_folder_tokenizer(folder)
        if tokenizer.vocab_size > model.args.backbone.vocab_size:
            raise CheckpointError(f"{folder}: tokenizer of {tokenizer.vocab_size} ids for a model of {model.args.backbone.vocab_size}")
        codec = Codec.from_pretrained(codec_folder, device=device, dtype=dtype)
        a, c = model.args, codec.model.args
        layout = (c.semantic_codebook_size, c.acoustic_dim, c.acoustic_codebook_size)
        if (a.semantic_codebook_size, a.acoustic_dim, a.acoustic_levels) != layout:
            raise CheckpointError(f"{folder}: the model speaks {a.semantic_codebook_size} + {a.acoustic_dim}x{a.acoustic_levels} codes, "
                                  f"its codec {codec_folder} has {c.semantic_codebook_size} + {c.acoustic_dim}x{c.acoustic_codebook_size}")
        return cls(model, codec, tokenizer, folder)

    # ----------------------------------------------------------------------------- facts

    @property
    def sample_rate(self) -> int:
        """Hz of the audio :meth:`speak` and :meth:`stream` return (the codec's rate)."""
        return int(self.codec.sample_rate)  # type: ignore[attr-defined]

    @property
    def languages(self) -> list[str]:
        """The ``language`` codes the model was trained to speak."""
        return list(self.model.args.languages)

    @property
    def voices(self) -> list[str]:
        """The preset voice names the folder holds (a ``voice`` may name one)."""
        return list_voices(self.folder)

    @property
    def max_reference_seconds(self) -> float:
        """The longest reference the model uses: its ``max_reference_frames`` (30 s for the full model,
        10 s for the tiny recipe's); :meth:`prepare_voice` keeps the first part of a longer one."""
        return min(MAX_REFERENCE_S, self.model.args.max_reference_frames / self.codec.frame_rate)  # type: ignore[attr-defined]

    def reference_range(self) -> str:
        """The reference lengths that work best, as messages say them ("3-10 s")."""
        longest = self.max_reference_seconds
        shortest = SHORT_REFERENCE_S if longest > SHORT_REFERENCE_S else MIN_REFERENCE_S
        return f"{shortest:g}-{round(longest, 1):g} s"

    @property
    def last_seed(self) -> int | None:
        """The seed of this thread's last :meth:`speak` / :meth:`stream` (drawn at random when none was given)."""
        return getattr(self._local, "seed", None)

    # ----------------------------------------------------------------------------- voices

    def prepare_voice(self, reference: str | AudioInput, sample_rate: int | None = None, *,
                      reference_text: str | None = None) -> Voice:
        """Check a reference and encode it: a preset name, an audio file (a path, an open binary
        file or its bytes), or an array with its rate.

        Refused (VoxkitError): not audio, silent, shorter than 1 s. Kept with a warning: shorter
        than 3 s, or longer than the model's reference window (:attr:`max_reference_seconds`), which
        is then trimmed to its first part; only that part of a file is decoded.
        """
        _check_reference_text(reference_text)
        if isinstance(reference, str) and reference in self.voices:
            codes, text = load_voice(self.folder, reference)
            return Voice(codes=codes, text=reference_text or text, name=reference, duration=codes.shape[0] / self.codec.frame_rate)
        if isinstance(reference, (str, os.PathLike)):
            where = str(reference)
            if not os.path.exists(where):
                known = ", ".join(self.voices) or "none"
                raise VoxkitError(f"voice {where!r} is neither an audio file nor a preset voice (presets: {known})")
            if os.path.isdir(where):
                raise VoxkitError(f"voice {where!r} is a directory, not an audio file")
        else:
            where = "reference audio"
        rate = self.sample_rate
        limit = self.max_reference_seconds
        try:
            # only the window is decoded and resampled: an hour-long file costs its first seconds
            wave, duration = load_head(reference, sample_rate, rate, "prepare_voice()", limit)  # [N] at 24 kHz, seconds in all
        except AudioError as err:  # bytes and open files have no name to show: the reader's placeholder is dropped
            raise VoxkitError(f"{where}: not readable as audio ({str(err).replace(' <stream>:', ':')})") from None
        notes: list[str] = []  # Voice.warnings
        if duration < MIN_REFERENCE_S:
            raise VoxkitError(f"{where}: the reference is {duration:.1f} s long; give at least {MIN_REFERENCE_S:.0f} s "
                              f"({self.reference_range()} works best)")
        if wave.numel() == 0 or float(wave.abs().max()) < SILENT_PEAK:
            part = f"the first {limit:g} s of the reference (the part the model uses) are" if duration > limit else "the reference is"
            raise VoxkitError(f"{where}: {part} silent")
        if duration > limit:
            notes.append(f"the reference is {duration:.1f} s long; its first {limit:g} s are used")
            duration = limit
        elif duration < SHORT_REFERENCE_S:
            notes.append(f"the reference is only {duration:.1f} s long; {self.reference_range()} of clear speech clone a voice better")
        codes = self.codec.encode(wave, rate)  # type: ignore[attr-defined]  # [R, 37]
        return Voice(codes=codes, text=reference_text, name=Path(where).stem if where != "reference audio" else where,
                     duration=duration, warnings=notes)

    def _voice(self, voice: object, reference_text: str | None) -> Voice | None:
        """Any voice :meth:`stream` takes, prepared. A ``reference_text`` given with a prepared
        :class:`Voice` replaces its transcript (in a copy), as it does for a preset's stored one:
        the caller said what the clip says, and a Voice is often prepared before its transcript is
        known. Without a voice there is no clip for it to transcribe, so it is refused."""
        _check_reference_text(reference_text)
        if voice is None:
            if reference_text:
                raise OptionError("reference_text is the transcript of the voice's reference clip: give the voice too")
            return None
        if isinstance(voice, Voice):
            return dataclasses.replace(voice, text=reference_text) if reference_text else voice
        if isinstance(voice, tuple) and len(voice) == 2:
            return self.prepare_voice(voice[0], voice[1], reference_text=reference_text)
        if isinstance(voice, (np.ndarray, torch.Tensor)):
            raise VoxkitError("an audio array as voice needs its rate: pass (array, sample_rate) or use prepare_voice")
        if not isinstance(voice, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(voice, "read"):
            raise OptionError(f"voice must be a preset name, an audio file, (samples, sample_rate) or a Voice from prepare_voice(); "
                              f"got {type(voice).__name__}")
        return self.prepare_voice(voice, reference_text=reference_text)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------- speech

    def speak(self, text: str, voice: object = None, *, reference_text: str | None = None, language: str | None = None,
              steps: int = 7, cfg: float = 1.2, seed: int | None = None, speed: float = 1.0,
              temperature: float = 0.8) -> tuple[np.ndarray, int]:
        """Speak ``text`` in ``voice``: (float32 audio [N], sample rate). Equal to joining :meth:`stream`."""
        chunks = list(self.stream(text, voice, reference_text=reference_text, language=language, steps=steps, cfg=cfg,
                                  seed=seed, speed=speed, temperature=temperature))
        return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), self.sample_rate

    def stream(self, text: str, voice: object = None, *, reference_text: str | None = None, language: str | None = None,
               steps: int = 7, cfg: float = 1.2, seed: int | None = None, speed: float = 1.0,
               temperature: float = 0.8) -> SpeechStream:
        """Yield float32 audio chunks as they are generated (one 80 ms frame each at speed 1; one
        sentence each otherwise, since time-stretching needs the sentence).

        Everything is checked here, before the first chunk: the options, the voice, and every
        sentence's prompt against the model's context (:meth:`_plan`).
        """
        sentences = self.sentences(text, language)
        if not is_number(speed) or not 0.5 <= speed <= 2.0:
            raise OptionError(f"speed must be a number between 0.5 and 2.0, got {speed!r}")
        options = GenerationOptions(steps=steps, cfg=cfg, temperature=temperature)  # OptionError: a VoxkitError
        prepared = self._voice(voice, reference_text)
        ref_ids = None if prepared is None or not prepared.text else self.tokenizer.encode(prepared.text, bos=False)  # type: ignore[attr-defined]
        pieces = self._plan(sentences, prepared, ref_ids)
        seed = secrets.randbits(31) if seed is None else check_seed(seed)
        self._local.seed = seed
        notes: list[str] = []
        stream = SpeechStream(iter(()), notes, parts=len(pieces))
        stream._chunks = self._stream(pieces, prepared, ref_ids, options, seed, float(speed), notes, stream)
        return stream

    def _plan(self, sentences: list[str], voice: Voice | None, ref_ids: list[int] | None) -> list[_Piece]:
        """The pieces to generate, tokenized, each leaving room in the model's context for its speech.

        Why up front: a prompt found too long at the third sentence used to stop a stream after the
        first two had been heard. A sentence whose speech (at :data:`PACE_CHARS_PER_S`) would not
        fit beside the voice prompt is split further (:func:`voxkit.tts.sentences.wrap`: clauses,
        words, then characters), which counts tokens, not characters: 300 CJK characters or 200
        emoji are 900 or 800 byte tokens. A text is refused (VoxkitError) only where the voice
        prompt leaves no room for even the first :data:`MIN_PIECE_CHARS` characters of a sentence.
        """
        encode = self.tokenizer.encode  # type: ignore[attr-defined]
        context = context_positions(self.model)
        if context is None:
            return [_Piece(s, encode(s, bos=False), None) for s in sentences]
        codes = None if voice is None else voice.codes
        fixed = int(self.model.prompt([], codes, ref_ids).tokens.shape[0])  # BOS, reference frames and text, [BEGIN_AUDIO]
        room = context - fixed
        frame_rate = float(self.codec.frame_rate)  # type: ignore[attr-defined]

        def positions(text: str, ids: list[int], chars_per_s: float) -> int:
            return len(ids) + math.ceil(frame_rate * len(text) / chars_per_s)

        def fits(text: str) -> bool:
            return positions(text, encode(text, bos=False), PACE_CHARS_PER_S) <= room

        pieces: list[_Piece] = []
        for number, sentence in enumerate(sentences, 1):
            probe = sentence[:MIN_PIECE_CHARS]
            parts = wrap(sentence, fits) if positions(probe, encode(probe, bos=False), FASTEST_CHARS_PER_S) <= room else []
            planned = [_Piece(part, ids, room - len(ids)) for part in parts for ids in [encode(part, bos=False)]]
            if not planned or any(positions(p.text, p.ids, FASTEST_CHARS_PER_S) > room for p in planned):
                raise self._no_room(number, sentence, voice, ref_ids, fixed, context)
            pieces.extend(planned)
        return pieces

    def _no_room(self, number: int, sentence: str, voice: Voice | None, ref_ids: list[int] | None, fixed: int,
                 context: int) -> VoxkitError:
        """The one-line refusal of a sentence the voice prompt leaves no room for: what takes the room and what to shorten."""
        parts = []
        if voice is not None:
            parts.append(f"{min(voice.codes.shape[0], self.model.args.max_reference_frames)} reference frames")
        if ref_ids:
            parts.append(f"{len(ref_ids)} reference-text tokens")
        taken = f"the voice prompt takes {fixed} ({', '.join(parts)})" if parts else f"the prompt takes {fixed}"
        what = _shorten(voice, ref_ids, sentence=not parts)
        return VoxkitError(f"sentence {number} ({_quote(sentence)}) does not fit the model's context of {context} positions: "
                           f"{taken}, leaving {context - fixed}; shorten {what}")

    def _stream(self, pieces: list[_Piece], voice: Voice | None, ref_ids: list[int] | None, options: GenerationOptions,
                seed: int, speed: float, notes: list[str], progress: SpeechStream) -> Iterator[np.ndarray]:
        generator = torch.Generator().manual_seed(seed)
        rate = self.sample_rate
        fade = np.linspace(0.0, 1.0, int(FADE_S * rate), dtype=np.float32)  # [F]
        pause = np.zeros(int(PAUSE_S * rate), dtype=np.float32)
        for index, piece in enumerate(pieces):
            if index:
                yield pause
            progress.part = index + 1
            prompt = self.model.prompt(piece.ids, None if voice is None else voice.codes, ref_ids)
            # at least one frame per sentence: a non-empty text never comes back as no audio at all
            frames = dataclasses.replace(options, max_frames=min(options.max_frames, 25 + 3 * len(piece.text)), min_frames=1)
            made = [0]  # frames generated, counted by _frames
            chunks = self._frames(prompt, frames, generator, made)
            if speed != 1.0:
                chunks = iter([_stretch(np.concatenate(list(chunks) or [np.zeros(0, np.float32)]), speed)])
            yield from _faded(chunks, fade)
            if piece.room is not None and piece.room < frames.max_frames and made[0] >= piece.room:
                # the context, not the model, ended it: said, or the take would pass as complete
                notes.append(f"sentence {index + 1} of {len(pieces)} ({_quote(piece.text)}) was cut short at "
                             f"{made[0] / self.codec.frame_rate:.1f} s: the model's context of "  # type: ignore[attr-defined]
                             f"{context_positions(self.model)} positions was full before the model ended it; "
                             f"shorten {_shorten(voice, ref_ids, sentence=True)}")
                warn(notes[-1])

    def _frames(self, prompt: Prompt, options: GenerationOptions, generator: torch.Generator, made: list[int]) -> Iterator[np.ndarray]:
        """One piece's audio, frame by frame through its own decoder state; ``made[0]`` counts the frames."""
        decoder = self.codec.stream()  # type: ignore[attr-defined]  # this sentence's decoder state
        for frame in generate_frames(self.model, prompt, options, generator):
            made[0] += 1
            yield decoder.decode(frame[None].cpu())

    def sentences(self, text: str, language: str | None = None) -> list[str]:
        """The sentences ``text`` is generated in (:mod:`voxkit.tts.sentences`: "Mr. Smith" and "5 p.m."
        stay whole, closing quotes stay with their sentence), numbers read aloud
        (:func:`voxkit.tts.reading.read_aloud`: "$1,500" as "one thousand five hundred dollars"), none
        longer than 250 characters. :meth:`stream` may split one further where, beside the voice
        prompt, its speech would not fit the model's context."""
        from voxkit.data.text import LANGUAGES
        from voxkit.tts.reading import read_aloud

        if not isinstance(text, str):
            hint = ": decode the bytes first (text.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
            raise OptionError(f"text must be a str, got {type(text).__name__}{hint}")
        if (problem := unicode_problem(text)) is not None:
            raise OptionError(f"the text {problem}")
        if not text.strip():
            raise VoxkitError("nothing to say: the text is empty")
        if language is not None and language not in self.languages:
            raise VoxkitError(f"language {language!r} is not supported by this model (it speaks: {', '.join(self.languages)})")
        lang = language or self.languages[0]
        text = " ".join(text.split())
        if lang in LANGUAGES:  # a language voxkit's text kit does not know keeps its digits
            # cut before reading too, so that "It ended. 52 people came." splits although the reader
            # writes "fifty-two" in lower case; each sentence is read with its own words around its numbers
            read = (" ".join(read_aloud(part, lang).split()) for part in split_sentences(text, lang, digits_start=True))
            found = [sentence for part in read for sentence in split_sentences(part, lang)]
        else:
            found = split_sentences(text, lang)
        # a sentence of punctuation or symbols only ("...", "!!!", an emoji) has nothing to say, and
        # the model would babble for its length: such sentences are left out
        found = [sentence for sentence in found if any(ch.isalnum() for ch in sentence)]
        if not found:
            raise VoxkitError("nothing to say: the text has no words, only punctuation or symbols")
        out: list[str] = []
        for sentence in found:
            out.extend(wrap(sentence, lambda piece: len(piece) <= MAX_SENTENCE_CHARS))
        return out


def _check_reference_text(reference_text: object) -> None:
    """A reference transcript must be text the tokenizer can encode (None: none given)."""
    if reference_text is None:
        return
    if not isinstance(reference_text, str):
        raise OptionError(f"reference_text must be a str, got {type(reference_text).__name__}")
    if (problem := unicode_problem(reference_text)) is not None:
        raise OptionError(f"reference_text {problem}")


def _shorten(voice: Voice | None, ref_ids: list[int] | None, *, sentence: bool) -> str:
    """What a message asks to shorten: the parts of the prompt there are ("the sentence, the reference text or the reference audio")."""
    parts = [name for name, present in (("the sentence", sentence), ("the reference text", bool(ref_ids)),
                                        ("the reference audio", voice is not None)) if present]
    return " or ".join(parts) if len(parts) < 3 else f"{parts[0]}, {parts[1]} or {parts[2]}"


def _quote(sentence: str, limit: int = 40) -> str:
    """A sentence as messages name it: quoted, its start only when it is long."""
    return f'"{sentence}"' if len(sentence) <= limit else f'"{sentence[:limit].rstrip()}..."'


class SpeechStream:
    """The audio chunks of :meth:`Speaker.stream`, and ``notes``: what the listener should know of
    the take (a sentence the model's context cut short), filled as the chunks are made; ``parts``:
    the pieces the text is spoken in (sentences, long ones split), and ``part``: the one being
    spoken (1-based; 0 before the first chunk).

    Why beside the warning: an app that streams to a listener (the demo) shows its notices in its own
    page, and a generator run by a thread pool cannot catch warnings safely. Why the parts: a long
    text takes minutes, and seconds spoken alone do not say how far through it the take is."""

    def __init__(self, chunks: Iterator[np.ndarray], notes: list[str], parts: int = 0) -> None:
        self._chunks, self.notes = chunks, notes
        self.parts, self.part = parts, 0

    def __iter__(self) -> SpeechStream:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._chunks)

    def close(self) -> None:
        """Stop the take here, as ``close()`` stops a generator: the generation and its decoder state
        are released now, not when the stream is garbage-collected (a listener who hung up, a
        ``contextlib.closing`` block); the stream is then exhausted."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _faded(chunks: Iterator[np.ndarray], fade: np.ndarray) -> Iterator[np.ndarray]:
    """Pass chunks through with the first samples faded in and the last faded out (one chunk held back)."""
    held: np.ndarray | None = None
    first = True
    for chunk in chunks:
        chunk = np.array(chunk, dtype=np.float32)
        if first and chunk.size:
            n = min(fade.size, chunk.size)
            chunk[:n] *= fade[:n]
            first = False
        if held is not None:
            yield held
        held = chunk
    if held is not None:
        n = min(fade.size, held.size)
        if n:
            held[-n:] *= fade[::-1][-n:]
        yield held


def _stretch(audio: np.ndarray, speed: float) -> np.ndarray:
    """Change tempo by ``speed`` without changing pitch (phase vocoder)."""
    if audio.size < 2048:
        return audio
    import librosa

    return librosa.effects.time_stretch(audio, rate=speed).astype(np.float32)
