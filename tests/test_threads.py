"""One loaded model used from several threads at once, as a web server's handlers use it.

The README promises that a loaded model is shared and read-only, with everything a stream
remembers in the caller's state (voxkit/streaming.py); tests/test_shared_model.py checks that
from one thread. Here the same work runs on threads at the same time (file transcriptions, live
streams pushed 80 ms at a time, generations) and must give exactly what it gives alone: the
words, their times, every event and every seeded token. The C kernels release the GIL, so their
calls do overlap. Each check runs a few rounds: a race shows up as a difference in some round.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import voxkit
from voxkit.audio.io import load_audio
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.fused_step import prepare_for_inference
from voxkit.lm.generate import Generator
from voxkit.lm.sampling import SamplingConfig
from voxkit.ops import native

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"
LANGUAGES = ("en", "fr", "es", "de")
CLIP_SECONDS = 2
STEP = 1280  # 80 ms at 16 kHz: what a live source pushes
ROUNDS = 2


def _together(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every job on its own thread, all released at once; their results (or the exceptions)."""
    results: dict[str, Any] = {}
    start = threading.Barrier(len(jobs))

    def run(name: str, job: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[name] = job()
        except Exception as error:  # noqa: BLE001 (reported as a difference, with the thread's name)
            results[name] = error

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    return {name: load_audio(SAMPLES / f"{name}.flac", 16000).numpy()[: 16000 * CLIP_SECONDS] for name in LANGUAGES}


def _file_job(transcriber: voxkit.Transcriber, wave: np.ndarray) -> Callable[[], list[tuple[str, float, float]]]:
    def job() -> list[tuple[str, float, float]]:
        return [(w.text, w.start, w.end) for w in transcriber.transcribe(wave).words]

    return job


def _stream_job(transcriber: voxkit.Transcriber, wave: np.ndarray) -> Callable[[], tuple[list, list, int]]:
    def job() -> tuple[list, list, int]:
        stream = transcriber.stream()
        events = []
        for start in range(0, wave.shape[0], STEP):
            events += stream.push(wave[start : start + STEP])
        events += stream.finish()
        words = [(w.text, w.start, w.end) for w in stream.transcript.words]
        return [(e.kind, e.text, e.start, e.end) for e in events], words, stream.steps

    return job


@pytest.mark.parametrize("torch_threads", [None, 1], ids=["torch-default", "torch-1"])
def test_threads_sharing_one_transcriber_get_what_each_gets_alone(
    transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray], torch_threads: int | None
) -> None:
    """Four files and four live streams on eight threads, plus a generation on the recogniser's
    own decoder: every transcript, word time, event and token equals the same work done alone."""
    before = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        generator = Generator(transcriber.bundle.model.decoder, SamplingConfig(temperature=1.0), num_delay_tokens=6.0)
        jobs: dict[str, Callable[[], Any]] = {"generate": lambda: generator.generate([[1, 33, 70, 71]], 24, seed=7)}
        for name, wave in clips.items():
            jobs[f"file {name}"] = _file_job(transcriber, wave)
            jobs[f"stream {name}"] = _stream_job(transcriber, wave)
        alone = {name: job() for name, job in jobs.items()}
        assert all(alone[f"file {name}"] for name in LANGUAGES), "every clip has words: the comparison is not empty"
        for _ in range(ROUNDS):
            together = _together(jobs)
            assert {name: together[name] for name in jobs} == alone
    finally:
        torch.set_num_threads(before)


def _tiny_generator() -> Generator:
    """A random float32 decoder prepared as loaded models are: fused projections, the C step."""
    torch.manual_seed(0)
    args = TransformerArgs(
        dim=64, n_layers=2, head_dim=16, hidden_dim=128, n_heads=4, n_kv_heads=2,
        vocab_size=97, sliding_window=12, rope_theta=10000.0, max_seq_len=256,
    )
    model = Transformer(args).eval()
    prepare_for_inference(model, "cpu")
    return Generator(model, SamplingConfig(temperature=1.2, top_k=30, top_p=0.95))


def test_seeded_generations_on_threads_equal_the_sequential_ones() -> None:
    """One Generator, four seeded runs (two batched) at once, as generate() and stream()."""
    generator = _tiny_generator()
    runs = {11: [[5, 17, 3, 9, 22], [40, 2]], 22: [[7, 7, 1, 30, 12]], 33: [[1, 2, 3]], 44: [[9, 8, 7, 6, 5, 4, 3]]}
    jobs: dict[str, Callable[[], Any]] = {}
    for seed, prompts in runs.items():
        jobs[f"generate {seed}"] = lambda p=prompts, s=seed: generator.generate(p, 40, seed=s)
        jobs[f"stream {seed}"] = lambda p=prompts, s=seed: list(generator.stream(p, 40, seed=s))
    alone = {name: job() for name, job in jobs.items()}
    assert all(len(row) == 40 for seed in runs for row in alone[f"generate {seed}"])  # no stop ids: full rows
    for _ in range(ROUNDS):
        assert _together(jobs) == alone


def test_threads_loading_a_kernel_at_once_build_it_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server whose threads load models at the same time used to run the C compiler once per
    thread for the same library (native.load is cached only once a call returns)."""
    monkeypatch.setenv("VOXKIT_CACHE_DIR", str(tmp_path))
    flags = (*native.DEFAULT_FLAGS, "-DVOXKIT_THREADS_TEST")  # a key of its own in load()'s cache
    source = str(native.SOURCES / "linear16.c")
    builds: list[int] = []
    run = subprocess.run

    def compiler(command: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        if source in command:
            builds.append(threading.get_ident())
            time.sleep(0.2)  # a slower compiler: every thread has asked for the library by now
        return run(command, *args, **kwargs)

    monkeypatch.setattr(native.subprocess, "run", compiler)
    libraries = _together({f"thread {i}": lambda: native.load("linear16", flags) for i in range(4)})
    if not any(libraries.values()):
        pytest.skip("no C compiler here")
    assert len(builds) == 1
    assert all(lib is not None and lib.linear16_isa() == libraries["thread 0"].linear16_isa() for lib in libraries.values())
    assert len(os.listdir(tmp_path / "kernels")) == 1  # the library, and no temporary file left behind
