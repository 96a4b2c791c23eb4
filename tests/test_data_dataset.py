"""ManifestDataset, duration bucketing (deterministic, distributed) and collate."""

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.data.augment import Augment, rms_normalize
from voxkit.data.dataset import DurationBucketSampler, ManifestDataset, collate, make_loader
from voxkit.data.manifest import write_manifest


@pytest.fixture()
def manifest(tmp_path):
    rows = []
    rng = np.random.default_rng(0)
    for i in range(12):
        dur = 0.3 + 0.1 * i
        path = tmp_path / f"{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(22050 * dur))).astype(np.float32), 22050)
        rows.append({"audio": str(path), "text": f"utt {i}", "language": "en", "speaker": f"s{i % 3}",
                     "duration": dur, "sample_rate": 22050, "words": [{"word": "utt", "start": 0.0, "end": 0.2}]})
    write_manifest(tmp_path / "m.jsonl", rows)
    return tmp_path / "m.jsonl"


def test_dataset_items_resampled_and_normalised(manifest):
    ds = ManifestDataset(manifest, 16000, normalize_db=-20.0)
    item = ds[3]
    assert item["audio"].dtype == torch.float32 and item["audio"].numel() == pytest.approx(0.6 * 16000, abs=2)
    rms_db = 20 * torch.log10(item["audio"].pow(2).mean().sqrt())
    assert float(rms_db) == pytest.approx(-20.0, abs=0.1)
    assert item["speaker"] == "s0" and item["words"][0]["word"] == "utt"


def test_augmentation_is_deterministic(manifest):
    aug = Augment(p_speed=1.0, p_noise=1.0)
    a = ManifestDataset(manifest, 16000, augment=aug, seed=5)
    b = ManifestDataset(manifest, 16000, augment=aug, seed=5)
    assert torch.equal(a[2]["audio"], b[2]["audio"])
    a.set_epoch(1)
    assert not torch.equal(a[2]["audio"], b[2]["audio"]) or a[2]["audio"].numel() != b[2]["audio"].numel()
    x = torch.randn(1000)
    assert float(rms_normalize(x, -30).pow(2).mean().sqrt()) == pytest.approx(10 ** (-1.5), rel=1e-3)


def test_bucket_sampler_budget_determinism_and_ranks(manifest):
    durs = ManifestDataset(manifest, 16000).durations
    s = DurationBucketSampler(durs, max_seconds=3.0, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert all(max(durs[i] for i in b) * len(b) <= 3.0 or len(b) == 1 for b in batches)
    assert batches == list(DurationBucketSampler(durs, max_seconds=3.0, seed=1))
    s.set_epoch(1)
    assert list(s) != batches or len(batches) == 1
    ranks = [list(DurationBucketSampler(durs, 3.0, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    assert {i for r in ranks for b in r for i in b} == set(range(12))


def test_collate_and_loader(manifest):
    ds = ManifestDataset(manifest, 16000)
    batch = collate([ds[0], ds[5]])
    assert batch["audio"].shape == (2, int(batch["audio_lengths"].max()))
    assert batch["audio"][0, batch["audio_lengths"][0]:].abs().sum() == 0
    loader = make_loader(ds, max_seconds=4.0, seed=0)
    seen = sum(len(b["text"]) for b in loader)
    assert seen == 12
