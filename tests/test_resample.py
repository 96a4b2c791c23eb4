"""voxkit.audio.resample.resample: torchaudio's results at the usual rates, bounded cost at every other
rate, and lengths and times on the input's clock."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

from voxkit.audio.io import load_head
from voxkit.audio.resample import DENSE_KERNEL_LIMIT, PolyphaseResampler, dense_kernel_size, resample

COMMON = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000)
ODD = (44101, 44099, 47999, 22254, 11127, 7919, 96001)  # share no large factor with 16 or 24 kHz


def _noise(samples: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    x = 0.3 * np.random.default_rng(seed).standard_normal((channels, samples))
    return torch.from_numpy(x.astype(np.float32))  # [C, N]


@pytest.mark.parametrize("target", [16000, 24000])
def test_common_rates_are_torchaudios_bit_for_bit(target: int) -> None:
    for rate in COMMON:
        x = _noise(rate // 4, channels=2)  # [2, N] 0.25 s
        assert dense_kernel_size(rate, target) <= DENSE_KERNEL_LIMIT
        assert torch.equal(resample(x, rate, target), AF.resample(x, rate, target)), rate


def test_the_limit_sends_odd_rates_to_the_polyphase_path() -> None:
    pairs = [(a, b) for a in COMMON for b in COMMON if a != b]
    assert max(dense_kernel_size(a, b) for a, b in pairs) <= DENSE_KERNEL_LIMIT  # every usual pair: torchaudio
    for rate in ODD:
        assert dense_kernel_size(rate, 24000) > DENSE_KERNEL_LIMIT


# ratios torchaudio computes cheaply (so it can be the reference): usual ones and a few odd ones
REFERENCE = [(44100, 16000), (16000, 44100), (48000, 24000), (11025, 32000), (384000, 16000),
             (22254, 24000), (12345, 16000), (16000, 1001), (7, 3)]


@pytest.mark.parametrize(("orig", "target"), REFERENCE)
def test_polyphase_equals_torchaudio(orig: int, target: int) -> None:
    """The same filter (torchaudio's kernel values, only its zero taps left out): the same length and
    the same samples up to float rounding, for every batch shape and dtype."""
    r32 = PolyphaseResampler(orig, target)
    r64 = PolyphaseResampler(orig, target, dtype=torch.float64)
    ta32 = AT.Resample(orig, target, dtype=torch.float32)  # functional.resample's kernel for float32, built once
    ta64 = AT.Resample(orig, target, dtype=torch.float64)
    for n in (1, 2, 5, 97, 1000, r32.q + 7, 2 * orig + 1):
        x = _noise(n, channels=2, seed=n)  # [2, n]
        reference = ta32(x)  # [2, n']
        got = r32(x)
        assert got.shape == reference.shape == (2, math.ceil(n * target / orig))
        torch.testing.assert_close(got, reference, atol=1e-6, rtol=0)
        torch.testing.assert_close(r64(x.double()), ta64(x.double()), atol=1e-12, rtol=0)
    small = _noise(333, channels=3)  # [3, 333]
    torch.testing.assert_close(r32(small), AF.resample(small, orig, target), atol=1e-6, rtol=0)  # the transform is the function
    assert r32(torch.zeros(3, 0)).shape == (3, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status to cap the address space")
def test_odd_rates_resample_in_bounded_time_and_memory() -> None:
    """An input rate sharing no large factor with the target made torchaudio build a kernel of
    target x input-rate entries: 1 s at 44101 Hz to 24 kHz took 39 s and 18 GB. Every odd rate, one
    shot and streamed, now fits in a 1.5 GB address-space cap above the interpreter's."""
    script = textwrap.dedent(f"""
        import resource, time
        import numpy as np, torch
        from voxkit.audio.io import resample
        from voxkit.audio.stream import StreamResampler
        resample(torch.zeros(64), 44100, 16000)  # thread pools and lazy imports before the cap
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 3 * 2**29, resource.getrlimit(resource.RLIMIT_AS)[1]))
        start = time.perf_counter()
        for rate in {ODD}:
            x = (0.1 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)  # 1 s
            for target in (16000, 24000):
                assert resample(torch.from_numpy(x), rate, target).shape == (target,)
                r = StreamResampler(rate, target)
                out = sum(r.push(x[i : i + rate // 10]).size for i in range(0, rate, rate // 10)) + r.flush().size
                assert out == target, (rate, target, out)
        print(f"{{time.perf_counter() - start:.2f}}")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) < 60  # ~0.5 s here; torchaudio's kernels took minutes


@pytest.mark.parametrize("target", [16000, 24000])
def test_an_odd_rate_keeps_the_input_clock(target: int) -> None:
    """No rate is rounded: 44101 Hz is not read as 44100 (which would move a click at 19 s by 7
    output samples); clicks land on their own sample and the length is the true rate's."""
    rate, seconds = 44101, 20
    x = torch.zeros(rate * seconds)  # [N]
    at = torch.tensor([1, 7, 13, 19])  # seconds
    x[at * rate] = 1.0
    y = resample(x, rate, target)  # [N']
    assert y.shape == (math.ceil(x.numel() * target / rate),)
    peaks = torch.tensor([int(y[int(t) * target - 50 : int(t) * target + 50].argmax()) - 50 for t in at])
    assert peaks.tolist() == [0, 0, 0, 0]
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(x.numel(), dtype=torch.float64) / rate).float()  # [N] 1 kHz
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(y.numel(), dtype=torch.float64) / target).float()  # [N']
    torch.testing.assert_close(resample(tone, rate, target)[100:-100], expected[100:-100], atol=2e-3, rtol=0)


def test_a_file_at_an_odd_rate_has_its_true_duration(tmp_path) -> None:
    rate, n = 44101, 44101 * 3 + 17
    path = tmp_path / "odd.wav"
    sf.write(path, _noise(n)[0].numpy(), rate, subtype="FLOAT")
    wave, duration = load_head(path, None, 16000, "test", None)
    assert duration == n / rate
    assert wave.shape == (math.ceil(n * 16000 / rate),)
    head, whole = load_head(path, None, 16000, "test", 1.0)
    assert whole == n / rate and head.shape == (16000,)
    torch.testing.assert_close(head, wave[:16000], atol=1e-6, rtol=0)  # the head is the whole's start
