"""ChainedDataset: long same-language chains with silences, each row once per epoch, exact word shifts."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.config import ConfigError, strict_from_dict
from voxkit.data.augment import Augment
from voxkit.data.chain import Chain, ChainedDataset
from voxkit.data.dataset import ManifestDataset, make_loader
from voxkit.data.manifest import write_manifest

SR = 16000
CHAIN = Chain(p=0.7, seconds=(3.0, 6.0), pause=(0.05, 0.4), p_long_pause=0.3, long_pause=(1.0, 2.0), lead=(0.0, 0.5))
# cheap but random: speed (word times move), gain and noise; no room, pitch or channel
AUGMENT = Augment(p_speed=1.0, p_pitch=0.0, p_room=0.0, p_noise=1.0, p_telephone=0.0, p_codec=0.0)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(30):
        n = int(rng.integers(6400, 19200))  # 0.4 .. 1.2 s, the manifest duration exact in samples
        sf.write(folder / f"{i}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), SR)
        words = [{"word": f"a{i}", "start": 0.05, "end": 0.2}, {"word": f"b{i}", "start": 0.25, "end": (n - 800) / SR}]
        rows.append({"audio": f"{i}.wav", "text": f"a{i} b{i}", "language": "en" if rng.random() < 0.6 else "de",
                     "speaker": f"s{i % 4}", "duration": n / SR, "id": f"u{i}", "words": words})
    write_manifest(folder / "m.jsonl", rows)
    return folder / "m.jsonl"


def chained(manifest, augment=None, chain=CHAIN, seed=3):
    return ChainedDataset(ManifestDataset(manifest, SR, augment=augment, seed=seed), chain)


def test_each_row_once_per_epoch_in_single_language_chains(manifest):
    ds = chained(manifest)
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert sorted(r for p in ds.plan for r in p.rows) == list(range(30))
        chains = [p for p in ds.plan if len(p.rows) > 1]
        assert chains and len(chains) < len(ds.plan)  # both kinds of items
        for p, seconds in zip(ds.plan, ds.durations, strict=True):
            assert len({ds.base.rows[r]["language"] for r in p.rows}) == 1
            assert len(p.rows) == 1 or seconds <= CHAIN.seconds[1] + 1e-9


def test_pauses_within_ranges(manifest):
    ds = chained(manifest, chain=dataclasses.replace(CHAIN, p=1.0))
    kinds = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for p in ds.plan:
            if len(p.rows) == 1 and p.gaps == (0,):
                continue  # a lone row left at the epoch's end
            assert CHAIN.lead[0] * SR - 1 <= p.gaps[0] <= CHAIN.lead[1] * SR + 1
            for gap in p.gaps[1:]:
                short = CHAIN.pause[0] * SR - 1 <= gap <= CHAIN.pause[1] * SR + 1
                long = CHAIN.long_pause[0] * SR - 1 <= gap <= CHAIN.long_pause[1] * SR + 1
                assert short or long
                kinds.add(long)
    assert kinds == {False, True}


def test_durations_audio_and_exact_word_shifts(manifest):
    ds = chained(manifest)
    base = ds.base
    source = {w["word"]: (r, w) for r in range(len(base)) for w in base.rows[r]["words"]}
    checked = 0
    for i, p in enumerate(ds.plan):
        item = ds[i]
        audio = item["audio"]
        assert audio.numel() / SR == pytest.approx(ds.durations[i], abs=1e-9)
        assert item["text"] == " ".join(base.rows[r]["text"] for r in p.rows)
        assert item["language"] == base.rows[p.rows[0]]["language"]
        assert item["id"] == (f"u{p.rows[0]}" if p.gaps == (0,) else f"u{p.rows[0]}+{len(p.rows) - 1}")
        times = [t for w in item["words"] for t in (w["start"], w["end"])]
        assert times == sorted(times) and times[0] >= 0 and times[-1] <= item["duration"]
        for w in item["words"]:
            r, original = source[w["word"]]
            shift = w["start"] - original["start"]
            assert w["end"] - original["end"] == pytest.approx(shift, abs=1e-9)
            row_audio = base.load(r)["audio"]
            a, b = round(original["start"] * SR), round(original["end"] * SR)
            assert torch.equal(audio[round(w["start"] * SR) : round(w["start"] * SR) + b - a], row_audio[a:b])
            checked += len(p.rows) > 1
    assert checked > 0


def test_deterministic_per_epoch_and_singles_equal_base_items(manifest):
    a, b = chained(manifest, AUGMENT), chained(manifest, AUGMENT)
    assert a.plan == b.plan and a.durations == b.durations
    chain = next(i for i, p in enumerate(a.plan) if len(p.rows) > 1)
    single = next(i for i, p in enumerate(a.plan) if p.gaps == (0,))
    for i in (chain, single):
        x, y = a[i], b[i]
        assert torch.equal(x["audio"], y["audio"]) and x["words"] == y["words"]
        assert all(w["end"] <= x["duration"] + 1e-3 for w in x["words"])  # speed-scaled, still inside
    row = a.plan[single].rows[0]
    mine, theirs = a[single], a.base[row]
    assert torch.equal(mine["audio"], theirs["audio"])
    assert {k: v for k, v in mine.items() if k != "audio"} == {k: v for k, v in theirs.items() if k != "audio"}
    plan0, audio0 = a.plan, a[chain]["audio"]
    a.set_epoch(1)
    assert a.plan != plan0
    b.set_epoch(1)
    assert a.plan == b.plan
    a.set_epoch(0)
    assert torch.equal(a[chain]["audio"], audio0)


def test_chain_config_rejects_bad_ranges():
    assert Chain(seconds=[10, 30]).seconds == (10.0, 30.0)  # recipe lists become tuples of floats
    for bad in ({"seconds": (30.0, 10.0)}, {"seconds": (0.0, 10.0)}, {"pause": (-0.1, 1.0)}, {"lead": (1.0,)},
                {"long_pause": (1.0, float("inf"))}, {"p": 1.5}, {"p_long_pause": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Chain(**bad)
    with pytest.raises(ConfigError, match="pause"):
        strict_from_dict(Chain, {"pause": [2.0, 1.0]}, ("tasks", "asr", "chain"))
    with pytest.raises(ConfigError, match="did you mean 'seconds'"):
        strict_from_dict(Chain, {"second": [20.0, 60.0]}, ("tasks", "asr", "chain"))


def test_loader_same_batches_with_workers(manifest):
    def batches(workers):
        ds = chained(manifest, AUGMENT)
        ds.set_epoch(1)
        loader = make_loader(ds, max_seconds=8.0, seed=0, num_workers=workers)
        loader.batch_sampler.set_epoch(1)
        return list(loader)

    inline, workers = batches(0), batches(2)
    assert len(inline) == len(workers) > 1
    assert sum(len(b["id"]) for b in inline) < 30  # some items are chains
    for x, y in zip(inline, workers, strict=True):
        assert x["id"] == y["id"] and x["words"] == y["words"]
        assert torch.equal(x["audio_lengths"], y["audio_lengths"])
        # same draws; only float rounding of reductions differs (workers run one thread each)
        torch.testing.assert_close(x["audio"], y["audio"], rtol=0, atol=1e-5)
