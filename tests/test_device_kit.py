"""The GPU session's tooling on the CPU: packing what a call carries, and unpacking what comes back.

A device call is rare and short, so a broken script costs a whole session; these check the parts
that can be checked without the machine (docs/training.md, "A GPU session").
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _pack_module():
    spec = importlib.util.spec_from_file_location("pack_for_device", ROOT / "scripts" / "pack_for_device.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.sh")))
def test_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], check=True)


def test_slim_wheel_drops_the_folder_and_its_record_lines(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    record = "pkg/__init__.py,sha256=x,1\npkg/data/big.json,sha256=y,2\npkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/__init__.py", "VALUE = 1\n")
        z.writestr("pkg/data/big.json", "{}" * 1000)
        z.writestr("pkg-1.0.dist-info/RECORD", record)
    assert _pack_module().slim_wheel(wheel, "pkg/data/") == 1
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py"]
        assert "pkg/data" not in z.read("pkg-1.0.dist-info/RECORD").decode()
        assert z.read("pkg/__init__.py") == b"VALUE = 1\n"


def test_opus_pack_stops_at_the_hours_asked(tmp_path: Path) -> None:
    src, out = tmp_path / "corpus", tmp_path / "packed"
    (src / "audio").mkdir(parents=True)
    rows = []
    for i in range(5):
        tone = 0.1 * np.sin(np.arange(16000 * 2) * 2 * np.pi * 220 / 16000).astype(np.float32)  # 2 s
        sf.write(src / "audio" / f"{i}.wav", tone, 16000)
        rows.append({"audio": f"audio/{i}.wav", "text": f"row {i}", "duration": 2.0, "words": []})
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _pack_module().to_opus(src, out, 1.0, hours=5.0 / 3600) == 2  # 2 + 2 s fit in 5 s, a third would not
    packed = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["text"] for r in packed] == ["row 0", "row 1"]
    audio, rate = sf.read(out / packed[0]["audio"])
    assert rate == 16000 and abs(audio.shape[0] - 32000) < 1000  # Opus keeps the length


def _session_output(tmp_path: Path, weights: bytes, checksum_of: bytes) -> tuple[Path, Path]:
    """What the two calls of gpu_session.sh bring back, for a recogniser only."""
    keep, first, second = tmp_path / "keep", tmp_path / "call1", tmp_path / "call2"
    for d in (keep / "asr", first, second):
        d.mkdir(parents=True)
    (keep / "asr" / "params.json").write_text('{"dim": 8}')
    (keep / "asr" / "vocab_subset.json").write_text("[1, 2]")
    (keep / "asr" / "weights.sha256").write_text(f"{hashlib.sha256(checksum_of).hexdigest()}  consolidated.safetensors\n")
    (keep / "asr" / "run.log").write_text("[300s] exported\n")
    with tarfile.open(first / "results.tgz", "w:gz") as tar:
        tar.add(keep, arcname=".")
    (first / "asr.part00").write_bytes(weights[:10])
    (second / "asr.part01").write_bytes(weights[10:])
    return first, second


def test_unpack_reassembles_parts_from_both_calls(tmp_path: Path) -> None:
    weights = bytes(range(256)) * 3
    first, second = _session_output(tmp_path, weights, weights)
    dest = tmp_path / "gpu"
    done = subprocess.run(["bash", "scripts/gpu_unpack.sh", str(first), str(second)], cwd=ROOT, capture_output=True,
                          text=True, env={"DEST": str(dest), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asr: " in done.stdout and "checksum ok" in done.stdout
    assert "codec: no weights came back" in done.stdout
    assert (dest / "asr" / "consolidated.safetensors").read_bytes() == weights
    assert json.loads((dest / "asr" / "params.json").read_text()) == {"dim": 8}
    assert (dest / "asr" / "vocab_subset.json").exists()


def test_unpack_reports_a_checksum_mismatch(tmp_path: Path) -> None:
    weights = bytes(range(256)) * 3
    first, second = _session_output(tmp_path, weights, weights[:-1])
    done = subprocess.run(["bash", "scripts/gpu_unpack.sh", str(first), str(second)], cwd=ROOT, capture_output=True,
                          text=True, env={"DEST": str(tmp_path / "gpu"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert "CHECKSUM MISMATCH" in done.stdout


FAKE_TRAINER = """
import os, signal, sys, time
out = sys.argv[1]
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
child = os.fork()
if child == 0:  # a data-loader process: the same command line, the trainer as its parent
    signal.signal(signal.SIGTERM, lambda s, f: open(out + ".loader", "w").write("signalled"))
    time.sleep(10)
    os._exit(0)
open(out + ".ready", "w").write("")
for _ in range(100):
    if got:
        break
    time.sleep(0.05)
open(out, "w").write("stopped" if got else "not signalled")
os.kill(child, signal.SIGKILL)
"""


def test_the_deadline_signals_the_trainer_and_not_its_loaders(tmp_path: Path) -> None:
    """gpu_session.sh's stop_trainer: SIGTERM to the job's `voxkit train` process (which then saves
    and exports), never to its data-loader children (which would die of it and fail the run)."""
    (tmp_path / "fake.py").write_text(FAKE_TRAINER)
    out = tmp_path / "result"
    script = f"""
set -m
eval "$(sed -n '/^stop_trainer() {{/,/^}}/p' {ROOT / "scripts" / "gpu_session.sh"})"
{sys.executable} {tmp_path / "fake.py"} {out} voxkit train recipe.toml &  # the command line a trainer has
job=$!
for _ in $(seq 100); do [ -e {out}.ready ] && break; sleep 0.05; done
sleep 0.2
stop_trainer $job
wait
"""
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    assert out.read_text() == "stopped"
    assert not (tmp_path / "result.loader").exists()
