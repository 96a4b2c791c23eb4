"""Python API of the voice-cloning TTS: ``voxkit.Speaker``.

    >>> from voxkit import Speaker
    >>> speaker = Speaker.from_pretrained()                    # the bundled model (or a folder)
    >>> audio, sr = speaker.speak("Hello there.", voice="ref.wav", seed=1)
    >>> for chunk in speaker.stream("A longer text. In two sentences.", voice=speaker.voices[0]):
    ...     play(chunk)                                         # float32 at 24 kHz, 80 ms at a time

A voice is a preset name, any audio file voxkit reads, an array with its rate, or a :class:`Voice`
made once by :meth:`Speaker.prepare_voice` (which checks the reference and says what it changed).
The loaded model is shared and read-only: every call owns its generation and decoder state, so
threads may speak at once. Long text is split at sentence boundaries; each sentence is generated
from the same voice prompt, faded in and out over a few milliseconds and joined by a short pause,
which is what keeps the joins free of clicks.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from voxkit.devices import usable_device
from voxkit.errors import AudioError, CheckpointError, VoxkitError
from voxkit.lm.sampling import check_seed
from voxkit.tts.checkpoint import list_voices, load_tts, load_voice
from voxkit.tts.generate import GenerationOptions, generate_frames
from voxkit.tts.model import TTSModel

BUNDLED = Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "tts-tiny"
MIN_REFERENCE_S = 1.0  # shorter references are refused: too little of the voice to copy
SHORT_REFERENCE_S = 3.0  # below this a reference works but is flagged
MAX_REFERENCE_S = 30.0
SILENT_PEAK = 1e-3  # a reference whose loudest sample is below this (-60 dBFS) is silence
FADE_S = 0.01  # fade in and out of every sentence
PAUSE_S = 0.2  # silence between sentences
MAX_SENTENCE_CHARS = 250


@dataclasses.dataclass
class Voice:
    """A prepared voice prompt: codec frames [R, 37] and what the checks found."""

    codes: torch.Tensor  # [R, 37] int64
    text: str | None = None  # the reference's transcript, when known
    name: str = "reference"
    duration: float = 0.0  # seconds of reference used
    warnings: list[str] = dataclasses.field(default_factory=list)


class Speaker:
    """A loaded TTS model with its codec and tokenizer; shared by any number of calls."""

    def __init__(self, model: TTSModel, codec: object, tokenizer: object, folder: Path) -> None:
        self.model = model.eval()
        self.codec = codec  # voxkit.codec.Codec
        self.tokenizer = tokenizer
        self.folder = folder
        self._local = threading.local()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> Speaker:
        """Load a TTS folder (default: the bundled model)."""
        from voxkit.checkpoint import detect_layout, recorded_tokenizer
        from voxkit.codec.api import Codec
        from voxkit.subset_tokenizer import load_folder_tokenizer

        usable_device(device, "device")
        folder = Path(path) if path is not None else BUNDLED
        if path is None and not (folder / "params.json").is_file():
            raise VoxkitError(f"no bundled TTS model in this install ({folder}); pass a model folder (see docs/tts.md)")
        model, codec_folder = load_tts(folder, device=device)
        if not codec_folder.is_dir():
            raise CheckpointError(f"{folder}: its codec folder {codec_folder} is missing")
        tokenizer = (recorded_tokenizer(folder) if detect_layout(folder) == "training" else None) or load_folder_tokenizer(folder)
        if tokenizer.vocab_size > model.args.backbone.vocab_size:
            raise CheckpointError(f"{folder}: tokenizer of {tokenizer.vocab_size} ids for a model of {model.args.backbone.vocab_size}")
        codec = Codec.from_pretrained(codec_folder, device=device)
        a, c = model.args, codec.model.args
        layout = (c.semantic_codebook_size, c.acoustic_dim, c.acoustic_codebook_size)
        if (a.semantic_codebook_size, a.acoustic_dim, a.acoustic_levels) != layout:
            raise CheckpointError(f"{folder}: the model speaks {a.semantic_codebook_size} + {a.acoustic_dim}x{a.acoustic_levels} codes, "
                                  f"its codec {codec_folder} has {c.semantic_codebook_size} + {c.acoustic_dim}x{c.acoustic_codebook_size}")
        return cls(model, codec, tokenizer, folder)

    # ----------------------------------------------------------------------------- facts

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)  # type: ignore[attr-defined]

    @property
    def languages(self) -> list[str]:
        return list(self.model.args.languages)

    @property
    def voices(self) -> list[str]:
        return list_voices(self.folder)

    @property
    def last_seed(self) -> int | None:
        """The seed of this thread's last :meth:`speak` / :meth:`stream` (drawn at random when none was given)."""
        return getattr(self._local, "seed", None)

    # ----------------------------------------------------------------------------- voices

    def prepare_voice(self, reference: str | os.PathLike[str] | np.ndarray | torch.Tensor, sample_rate: int | None = None, *,
                      reference_text: str | None = None) -> Voice:
        """Check a reference and encode it: a preset name, an audio file, or an array with its rate.

        Refused (VoxkitError): not audio, silent, shorter than 1 s. Kept with a warning: shorter
        than 3 s, or longer than the model's reference window (30 s for the full model), which is
        then trimmed to its first part.
        """
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
        try:
            wave = self.codec.load(reference, sample_rate)  # type: ignore[attr-defined]  # [N] at 24 kHz
        except AudioError as err:
            raise VoxkitError(f"{where}: not readable as audio ({err})") from None
        rate = self.sample_rate
        duration = wave.shape[0] / rate
        warnings: list[str] = []
        if duration < MIN_REFERENCE_S:
            raise VoxkitError(f"{where}: the reference is {duration:.1f} s long; give at least {MIN_REFERENCE_S:.0f} s (3-30 s works best)")
        if wave.numel() == 0 or float(wave.abs().max()) < SILENT_PEAK:
            raise VoxkitError(f"{where}: the reference is silent")
        limit = min(MAX_REFERENCE_S, self.model.args.max_reference_frames / self.codec.frame_rate)  # type: ignore[attr-defined]
        if duration > limit:
            wave = wave[: int(limit * rate)]
            warnings.append(f"the reference is {duration:.1f} s long; its first {limit:g} s are used")
            duration = limit
        elif duration < SHORT_REFERENCE_S:
            warnings.append(f"the reference is only {duration:.1f} s long; 3-30 s of clear speech clone a voice better")
        codes = self.codec.encode(wave, rate)  # type: ignore[attr-defined]  # [R, 37]
        return Voice(codes=codes, text=reference_text, name=Path(where).stem if where != "reference audio" else where,
                     duration=duration, warnings=warnings)

    def _voice(self, voice: object, reference_text: str | None) -> Voice | None:
        if voice is None or isinstance(voice, Voice):
            return voice
        if isinstance(voice, tuple) and len(voice) == 2:
            return self.prepare_voice(voice[0], int(voice[1]), reference_text=reference_text)
        if isinstance(voice, (np.ndarray, torch.Tensor)):
            raise VoxkitError("an audio array as voice needs its rate: pass (array, sample_rate) or use prepare_voice")
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
               temperature: float = 0.8) -> Iterator[np.ndarray]:
        """Yield float32 audio chunks as they are generated (one 80 ms frame each at speed 1; one
        sentence each otherwise, since time-stretching needs the sentence)."""
        sentences = self.sentences(text, language)
        if not 0.5 <= speed <= 2.0:
            raise VoxkitError(f"speed must be between 0.5 and 2.0, got {speed}")
        options = GenerationOptions(steps=steps, cfg=cfg, temperature=temperature)  # OptionError: a VoxkitError
        prepared = self._voice(voice, reference_text)
        seed = secrets.randbits(31) if seed is None else check_seed(seed)
        self._local.seed = seed
        return self._stream(sentences, prepared, options, seed, speed)

    def _stream(self, sentences: list[str], voice: Voice | None, options: GenerationOptions, seed: int,
                speed: float) -> Iterator[np.ndarray]:
        generator = torch.Generator().manual_seed(seed)
        rate = self.sample_rate
        fade = np.linspace(0.0, 1.0, int(FADE_S * rate), dtype=np.float32)  # [F]
        pause = np.zeros(int(PAUSE_S * rate), dtype=np.float32)
        ref_text = None if voice is None or not voice.text else self.tokenizer.encode(voice.text, bos=False)  # type: ignore[attr-defined]
        for index, sentence in enumerate(sentences):
            if index:
                yield pause
            ids = self.tokenizer.encode(sentence, bos=False)  # type: ignore[attr-defined]
            prompt = self.model.prompt(ids, None if voice is None else voice.codes, ref_text)
            # at least one frame per sentence: a non-empty text never comes back as no audio at all
            frames = dataclasses.replace(options, max_frames=min(options.max_frames, 25 + 3 * len(sentence)), min_frames=1)
            decoder = self.codec.stream()  # type: ignore[attr-defined]  # this sentence's decoder state
            chunks = (decoder.decode(frame[None].cpu()) for frame in generate_frames(self.model, prompt, frames, generator))
            if speed != 1.0:
                chunks = iter([_stretch(np.concatenate(list(chunks) or [np.zeros(0, np.float32)]), speed)])
            yield from _faded(chunks, fade)

    def sentences(self, text: str, language: str | None = None) -> list[str]:
        """The pieces ``text`` is generated in: sentences, numbers read aloud (:func:`voxkit.tts.reading.read_aloud`:
        "$1,500" as "one thousand five hundred dollars"), none longer than 250 characters."""
        from voxkit.data.text import LANGUAGES, split_sentences
        from voxkit.tts.reading import read_aloud

        if not isinstance(text, str) or not text.strip():
            raise VoxkitError("nothing to say: the text is empty")
        if language is not None and language not in self.languages:
            raise VoxkitError(f"language {language!r} is not supported by this model (it speaks: {', '.join(self.languages)})")
        lang = language or self.languages[0]
        if lang in LANGUAGES:  # a language voxkit's text kit does not know keeps its digits
            text = read_aloud(text, lang)
        out: list[str] = []
        for sentence in split_sentences(" ".join(text.split())):
            out.extend(_wrap(sentence, MAX_SENTENCE_CHARS))
        return out


def _wrap(sentence: str, limit: int) -> list[str]:
    """Split an over-long sentence at clause marks, then at spaces, into pieces of at most ``limit``
    characters; a run without spaces longer than that (a URL, text in a script written without
    spaces) is cut every ``limit`` characters, so no piece outgrows the model's context."""
    if len(sentence) <= limit:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for part in re.split(r"(?<=[,;:])\s+|\s+", sentence):
        while len(part) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(part[:limit])
            part = part[limit:]
        if current and len(current) + 1 + len(part) > limit:
            pieces.append(current)
            current = part
        else:
            current = f"{current} {part}".strip()
    if current:
        pieces.append(current)
    return pieces


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
