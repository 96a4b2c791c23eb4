"""Speech or not, per 80 ms step: Silero VAD's network in numpy, its state kept per stream.

Why: the pause cutter (asr/segments.py) finds pauses by energy. A steady noise floor, the hum of a
fan or of a room (pink or brown noise rather than white), has no quiet step, and the recogniser,
which has heard only clean or white-noised speech, writes words into it: a room with nobody speaking
came out as gibberish (docs/asr.md, "Noise without speech"). A voice-activity detector tells
speech from such noise whatever their levels, so the cutter can treat noise without speech as a
pause: skipped, never heard by the recogniser.

The network and its weights are Silero VAD's (MIT), as they ship inside the PyPI package
``silero-vad`` (``silero_vad/data/silero_vad.jit``); nothing is downloaded. It is not
run through the package's own model object because that object keeps one stream's state inside
itself and takes one 32 ms chunk per Python call. Here the weights are loaded once per process and
shared read-only, each stream keeps its recurrent state, its last samples and its working arrays
in a :class:`SpeechState`, and all the chunks of a push go through each layer as one product.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch

from voxkit.errors import VoxkitError

CHUNK = 512  # samples per verdict at 16 kHz (32 ms): what the network was trained on
CONTEXT = 64  # samples of the chunk before that each chunk also sees
N_FFT = 256
HOP = 128
HIDDEN = 128
BLOCK_STEPS = 64  # most steps computed together: a file goes through in blocks, its working arrays stay small
WEIGHTS = "silero_vad.jit"  # the package's model (its .safetensors file holds an older version's weights)


@dataclasses.dataclass(frozen=True)
class SileroNet:
    """The network as matrices: a fixed STFT, four kernel-3 convolutions down to one 128-d vector
    per chunk, an LSTM cell across chunks, a sigmoid.

    A chunk's front end is short (4 STFT frames, then 4, 2, 1, 1 frames). The first convolution
    gathers its taps with one precomputed index; the other three are small enough to be folded,
    padding included, into one dense matrix each on their input's flattened frames. float64, so
    that a chunk's probability does not depend on how many chunks were computed with it (a live
    push holds two or three, a file block hundreds): the cutter must cut a live stream and a whole
    file at the same steps.
    """

    real: np.ndarray  # [N_FFT, N_FFT // 2 + 1] the STFT's real part of each bin
    imag: np.ndarray  # [N_FFT, N_FFT // 2 + 1] ... and its imaginary part
    conv1: tuple[np.ndarray, np.ndarray]  # weight [3 * 129, 128] in (tap, channel) order, bias [128]
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]  # convs 2-4: (matrix [L * C, L' * O] time-major, bias [L' * O])
    w_ih: np.ndarray  # [HIDDEN, 4 * HIDDEN] gates i, f, g, o; the sigmoid gates' columns halved (see probabilities)
    w_hh: np.ndarray  # [HIDDEN, 4 * HIDDEN] (halved the same way)
    bias: np.ndarray  # [4 * HIDDEN] both LSTM biases (halved the same way)
    w_out: np.ndarray  # [HIDDEN]
    b_out: float

    def probabilities(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray, work: Workspace) -> np.ndarray:
        """Speech probability of each of ``windows`` [m, CONTEXT + CHUNK] (float64; one stream's
        chunks in order) -> a view [m] into ``work``; ``h`` and ``c`` [HIDDEN] are the stream's LSTM
        state, updated in place. Every array is one of ``work``'s: a live push allocates nothing.

        One tanh serves all four gates: sigmoid(x) = (1 + tanh(x / 2)) / 2, and the x / 2 of the
        three sigmoid gates is in their halved weights.
        """
        m, half = windows.shape[0], N_FFT // 2 + 1
        work.fit(m, self)
        frames = work.frames[:m]  # [m, 4, 256]: the window framed at a hop of 128, padded on the right by reflection
        for k in range(3):
            frames[:, k] = windows[:, k * HOP : k * HOP + N_FFT]
        frames[:, 3, : CONTEXT + CHUNK - 3 * HOP] = windows[:, 3 * HOP :]
        frames[:, 3, CONTEXT + CHUNK - 3 * HOP :] = windows[:, -2 : -2 - CONTEXT : -1]  # the last sample not repeated
        flat = frames.reshape(m * 4, N_FFT)
        real = np.matmul(flat, self.real, out=work.real[: m * 4])  # [m * 4, 129]
        imag = np.matmul(flat, self.imag, out=work.imag[: m * 4])  # [m * 4, 129]
        mags = work.mags[:m]  # [m, 6, 129]: frames 0 and 5 stay zero, conv1's padding
        np.square(real, out=real)  # squares and a root: np.hypot is several times slower here
        real += np.square(imag, out=imag)
        mags[:, 1:5] = np.sqrt(real, out=real).reshape(m, 4, half)  # contiguous operands: no ufunc buffers
        # mode="clip" changes nothing (every index is in range) but lets take write into out unbuffered
        taps = np.take(mags, CONV1_TAPS, axis=1, out=work.taps[:m], mode="clip")  # [m, 4, 3, 129]
        # biases are added as arrays of the output's shape (work.biases): numpy copies the
        # output for an in-place add of a broadcast row, which a live push would pay every time
        x = np.matmul(taps.reshape(m * 4, 3 * half), self.conv1[0], out=work.conv1[: m * 4])  # [m * 4, 128]
        x += work.biases[0][: m * 4]
        np.maximum(x, 0.0, out=x)
        x = x.reshape(m, -1)  # [m, 4 * 128] time-major
        for (matrix, _), out, bias in zip(self.dense, work.dense, work.biases[1:4], strict=True):
            x = np.matmul(x, matrix, out=out[:m])  # [m, 2 * 64], [m, 64], [m, 128]
            x += bias[:m]
            np.maximum(x, 0.0, out=x)
        gates_in = np.matmul(x, self.w_ih, out=work.gates[:m])  # [m, 512]: the input's part, all chunks at once
        gates_in += work.biases[4][:m]
        g, scratch, hs = work.g, work.scratch, work.hs[:m]  # [512], [128], [m, 128]
        i, f, cand, o = g[:HIDDEN], g[HIDDEN : 2 * HIDDEN], g[2 * HIDDEN : 3 * HIDDEN], g[3 * HIDDEN :]  # views
        for j in range(m):  # the recurrence itself: each chunk needs the one before
            np.dot(h, self.w_hh, out=g)  # [512]
            g += gates_in[j]
            np.tanh(g, out=g)
            g[: 2 * HIDDEN] += 1.0
            o += 1.0  # i, f, o hold twice their sigmoid now
            c *= f  # [128]
            c += np.multiply(i, cand, out=scratch)
            c *= 0.5
            np.tanh(c, out=h)  # [128]
            h *= o
            h *= 0.5
            hs[j] = h
        np.maximum(hs, 0.0, out=hs)  # [m, 128]
        p = np.matmul(hs, self.w_out, out=work.p[:m])  # [m] logits
        p += self.b_out
        p *= 0.5
        np.tanh(p, out=p)  # the sigmoid, without overflow for large negative logits
        p += 1.0
        p *= 0.5
        return p


@dataclasses.dataclass
class Workspace:
    """One stream's working arrays for :meth:`SileroNet.probabilities`, sized for the most chunks a
    call has had (grown, never shrunk): a live stream's pushes reuse them."""

    chunks: int = 0
    frames: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    real: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    imag: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    mags: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    taps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    conv1: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    dense: tuple[np.ndarray, ...] = ()
    gates: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    biases: tuple[np.ndarray, ...] = ()  # conv1's [m * 4, 128], convs 2-4's [m, L' * O], the LSTM's [m, 512]: rows repeated
    hs: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    p: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    g: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4 * HIDDEN))
    scratch: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(HIDDEN))

    def fit(self, m: int, net: SileroNet) -> None:
        """Room for ``m`` chunks of ``net``."""
        if m <= self.chunks:
            return
        half = N_FFT // 2 + 1
        self.chunks = m
        self.frames = np.zeros((m, 4, N_FFT))
        self.real, self.imag = np.zeros((m * 4, half)), np.zeros((m * 4, half))
        self.mags = np.zeros((m, 6, half))
        self.taps = np.zeros((m, 4, 3, half))
        self.conv1 = np.zeros((m * 4, 128))
        self.dense = (np.zeros((m, 128)), np.zeros((m, 64)), np.zeros((m, HIDDEN)))
        self.gates = np.zeros((m, 4 * HIDDEN))
        self.hs = np.zeros((m, HIDDEN))
        self.p = np.zeros(m)
        rows = (m * 4, m, m, m, m)
        self.biases = tuple(np.tile(b, (r, 1)) for b, r in zip((net.conv1[1], *(b for _, b in net.dense), net.bias), rows, strict=True))


CONV1_TAPS = np.arange(4)[:, None] + np.arange(3)  # [4, 3]: conv1's input frames (0 and 5: the padding) per output frame


def _conv_matrix(weight: np.ndarray, bias: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """A kernel-3, padding-1 convolution ``weight`` [O, C, 3] over ``length`` frames as one matrix on
    time-major flattened frames, [length * C, length' * O], and its bias tiled [length' * O]."""
    o, ch, k = weight.shape
    out_len = (length - 1) // stride + 1
    m = np.zeros((length, ch, out_len, o))
    for u in range(out_len):
        for tap in range(k):
            t = u * stride - 1 + tap
            if 0 <= t < length:  # a tap on the zero padding adds nothing
                m[t, :, u, :] = weight[:, :, tap].T
    return m.reshape(length * ch, out_len * o), np.tile(bias, out_len)


def weights_path() -> Path:
    """The weights file inside the installed ``silero-vad`` package, found without importing the
    package (its import sets torch's thread count to 1 for the whole process)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VoxkitError("telling speech from noise needs the silero-vad package: pip install silero-vad "
                          "(or cut at energy alone: Segmenting(speech_threshold=None))")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / WEIGHTS
    if not path.is_file():
        raise VoxkitError(f"the silero-vad package has no {WEIGHTS} (at {path}): install silero-vad>=6")
    return path


_LOADED: list[SileroNet] = []
_LOADING = threading.Lock()


def silero_net() -> SileroNet:
    """The network with the package's weights, loaded once per process (streams started at once in
    several threads wait for the first load) and shared read-only."""
    with _LOADING:
        if not _LOADED:
            _LOADED.append(_load())
        return _LOADED[0]


def _load() -> SileroNet:
    """The package's TorchScript model read for its weights (its own code is not run), renamed to
    this module's matrices."""
    import warnings

    with warnings.catch_warnings():  # under _LOADING: no other thread of this module changes the filters meanwhile
        warnings.simplefilter("ignore", FutureWarning)  # newer torch marks torch.jit.load deprecated
        try:
            stored = torch.jit.load(str(weights_path()), map_location="cpu").state_dict()
        except (RuntimeError, AttributeError) as e:  # a torch without TorchScript loading, a damaged file
            raise VoxkitError(f"cannot read the silero-vad model at {weights_path()}: {e}") from None
    w = {k.removeprefix("_model."): v.double().numpy() for k, v in stored.items()}
    try:
        conv = [(w[f"encoder.{i}.reparam_conv.weight"], w[f"encoder.{i}.reparam_conv.bias"]) for i in range(4)]
        conv1 = (conv[0][0].transpose(2, 1, 0).reshape(-1, conv[0][0].shape[0]), conv[0][1])  # [(tap, channel), out]
        dense = tuple(_conv_matrix(wt, b, length, stride) for (wt, b), length, stride in zip(conv[1:], (4, 2, 1), (2, 2, 1), strict=True))
        basis = w["stft.forward_basis_buffer"][:, 0].T  # [256, 258]: real rows, then imaginary rows
        half = np.ones(4 * HIDDEN)
        half[: 2 * HIDDEN] = half[3 * HIDDEN :] = 0.5  # the sigmoid gates i, f, o (SileroNet.probabilities)
        return SileroNet(
            real=np.ascontiguousarray(basis[:, : N_FFT // 2 + 1]), imag=np.ascontiguousarray(basis[:, N_FFT // 2 + 1 :]),
            conv1=conv1, dense=dense,
            w_ih=w["decoder.rnn.weight_ih"].T * half, w_hh=w["decoder.rnn.weight_hh"].T * half,
            bias=(w["decoder.rnn.bias_ih"] + w["decoder.rnn.bias_hh"]) * half,
            w_out=w["decoder.decoder.2.weight"].reshape(-1), b_out=float(w["decoder.decoder.2.bias"][0]),
        )
    except KeyError as e:
        raise VoxkitError(f"the silero-vad package's model has no tensor {e} (voxkit reads silero-vad 6)") from None


class SpeechState:
    """One stream's detector: feed it the stream's whole steps in order, get each step's speech
    probability (the largest of the chunks that end in it: every 80 ms step holds two or three
    chunk ends). Holds the recurrent state, the last samples and the working arrays, in buffers
    kept for the stream; a long push goes through in blocks of :data:`BLOCK_STEPS`, so that the
    arrays stay the size of a block, not of the push."""

    def __init__(self, step: int, net: SileroNet | None = None) -> None:
        if step < CHUNK:
            raise ValueError(f"a step of {step} samples may hold no chunk end: steps of at least {CHUNK} samples")
        self.net = silero_net() if net is None else net
        self.step = step
        self.h, self.c = np.zeros(HIDDEN), np.zeros(HIDDEN)  # the LSTM state
        self.buffer = np.zeros(CONTEXT + CHUNK + BLOCK_STEPS * step)  # float64: context, leftover, a block's samples
        self.windows = _windows(self.buffer)  # [chunks, 576] views: chunk j with the CONTEXT samples before it
        self.held = CONTEXT  # samples in the buffer: the context (zeros before the stream) and the leftover
        self.probs = np.zeros(BLOCK_STEPS)  # [>= steps of the last call] its per-step values
        self.firsts = np.zeros(BLOCK_STEPS, np.intp)  # [BLOCK_STEPS] each step's first chunk in a block
        self.offsets = np.arange(BLOCK_STEPS) * step  # [BLOCK_STEPS] where each step of a block starts
        self.work = Workspace()

    def of(self, steps: np.ndarray) -> np.ndarray:
        """Speech probability of each of ``steps`` [k, step] (the stream's next whole steps) -> view [k],
        valid until the next call."""
        k = steps.shape[0]
        if self.probs.shape[0] < k:  # a push of more steps than any before: k floats
            self.probs = np.zeros(k)
        for at in range(0, k, BLOCK_STEPS):
            block = steps[at : at + BLOCK_STEPS]  # [b, step]
            self._block(block, self.probs[at : at + block.shape[0]])
        return self.probs[:k]

    def _block(self, steps: np.ndarray, out: np.ndarray) -> None:
        """At most BLOCK_STEPS ``steps`` [b, step] -> their values written into ``out`` [b]."""
        b = steps.shape[0]
        n = b * self.step
        self.buffer[self.held : self.held + n] = steps.reshape(-1)
        total = self.held + n
        m = (total - CONTEXT) // CHUNK  # whole chunks
        p = self.net.probabilities(self.windows[:m], self.h, self.c, self.work)  # [m]
        # Chunk j ends (j + 1) * CHUNK - leftover samples into the block and belongs to the step it
        # ends in; step s ends (s + 1) * step samples in, so its first chunk is the first whose end
        # passes the previous step's end, s * step.
        firsts = self.firsts[:b]  # [b]
        np.add(self.offsets[:b], self.held - CONTEXT, out=firsts)
        firsts //= CHUNK  # chunks ending at or before the previous step's end
        np.maximum.reduceat(p, firsts, out=out)  # [b]
        keep = total - m * CHUNK  # the last chunk's context and what no chunk has taken yet
        self.buffer[:keep] = self.buffer[m * CHUNK : total]
        self.held = keep


def _windows(buffer: np.ndarray) -> np.ndarray:
    """Every whole chunk of ``buffer`` [N] with the CONTEXT samples before it: views [chunks, 576]."""
    chunks = (buffer.shape[0] - CONTEXT) // CHUNK
    step = buffer.strides[0]
    return np.lib.stride_tricks.as_strided(buffer, (chunks, CONTEXT + CHUNK), (CHUNK * step, step), writeable=False)
