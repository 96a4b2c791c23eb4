"""StdinBuffer: standard input drained from the start, so that a live source never stalls on a full
pipe while the model loads (a recorder then overruns and loses the first seconds of speech)."""

from __future__ import annotations

import os
import threading

from voxkit.audio.stdin_buffer import StdinBuffer


def _writer(fd: int, data: bytes) -> threading.Thread:
    def write() -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_source_writing_more_than_a_pipe_holds_is_not_stalled_before_anyone_reads() -> None:
    read_end, write_end = os.pipe()
    data = os.urandom(1 << 20)  # 16 pipe buffers: unread, the writer would block on the first of them
    buffered = StdinBuffer(read_end)
    writer = _writer(write_end, data)
    writer.join(timeout=30)
    assert not writer.is_alive()  # all written while nothing read the buffer
    assert buffered.read(10) == data[:10]  # exactly n bytes
    held = buffered.read1(1 << 30)  # what is held now, not waiting for more
    assert held and held + buffered.read() == data[10:]
    assert buffered.read(5) == b"" and buffered.read1(5) == b""  # the end
    os.close(read_end)


def test_the_reader_stops_at_its_limit_until_bytes_are_taken() -> None:
    read_end, write_end = os.pipe()
    data = os.urandom(1 << 20)
    buffered = StdinBuffer(read_end, limit=1 << 16)
    writer = _writer(write_end, data)
    writer.join(timeout=1)
    assert writer.is_alive()  # held back: the buffer is full and the pipe behind it too
    assert buffered.read() == data  # read to the end, the limit freed as bytes are taken
    writer.join(timeout=30)
    assert not writer.is_alive()
    os.close(read_end)


def test_read1_returns_what_has_arrived_without_waiting_for_more() -> None:
    read_end, write_end = os.pipe()
    buffered = StdinBuffer(read_end)
    os.write(write_end, b"abc")
    assert buffered.read1(100) == b"abc"  # the source is still open: read() would wait here
    os.write(write_end, b"defg")
    os.close(write_end)
    assert buffered.read(100) == b"defg"
    os.close(read_end)


def test_a_failed_read_is_an_error_after_what_came_before() -> None:
    """A read error of the descriptor looked like the end of the input: a transcript ended early
    without a word."""
    import pytest

    from voxkit.errors import AudioError

    write_only = os.open(os.devnull, os.O_WRONLY)  # reading it fails with EBADF
    buffered = StdinBuffer(write_only)
    with pytest.raises(AudioError, match=r"^reading stdin failed: Bad file descriptor$"):
        buffered.read(10)
    with pytest.raises(AudioError, match=r"^reading stdin failed"):
        buffered.read1(10)
    os.close(write_only)


def test_transcribe_drains_stdin_before_the_model_loads(monkeypatch, capsys, model_dir) -> None:  # type: ignore[no-untyped-def]
    """The writer must finish a megabyte (16 pipe buffers) while the model is still loading."""
    import io
    import sys

    from cli_helpers import run_cli
    from voxkit import api

    read_end, write_end = os.pipe()
    data = b"\x00\x00" * (1 << 19)  # 1 MB of raw s16le silence
    writer = _writer(write_end, data)
    finished_before_load: list[bool] = []
    real_init = api.Transcriber.__init__

    def loading(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        writer.join(timeout=20)
        finished_before_load.append(not writer.is_alive())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(api.Transcriber, "__init__", loading)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(read_end, closefd=True)))
    code, _, _ = run_cli(["transcribe", "-", "--model", str(model_dir)], capsys)
    assert finished_before_load == [True] and code in (0, 1)
