"""The piano-roll loader: the standard splits of all four sets, shapes, values, batching."""

import numpy as np
import pytest
import torch

from grukit.errors import UserInputError
from grukit.tasks.music.data import BucketBatchSampler, collate, load_dataset, make_loader

# Sequence and frame counts of the published splits (SOURCE.md of the data folder; Boulanger-Lewandowski 2012).
SPLITS = {
    "jsb": ((229, 76, 77), (13807, 4602, 4725)),
    "nottingham": ((694, 173, 170), (176561, 45513, 44463)),
    "musedata": ((524, 135, 124), (245202, 82755, 64339)),
    "piano": ((87, 12, 25), (75911, 8540, 19036)),
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_splits_shapes_values(name):
    data = load_dataset(name)
    counts, frames = SPLITS[name]
    assert tuple(len(data[s]) for s in ("train", "valid", "test")) == counts
    assert tuple(sum(len(x) for x in data[s]) for s in ("train", "valid", "test")) == frames
    for split in data.values():
        for x in split:
            assert x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 88
            assert set(np.unique(x)) <= {0, 1}


def test_jsb_pitch_range_is_the_chorale_range():
    # Column k is MIDI 21 + k; the chorales span MIDI 43 (G2) .. 96 (C7) in Boulanger-Lewandowski's sets,
    # and four voices sound at most 4 notes at once.
    data = load_dataset("jsb")
    allx = np.concatenate([x for s in data.values() for x in s])
    cols = np.nonzero(allx.sum(0))[0]
    assert 21 + cols.min() == 43 and 21 + cols.max() == 96
    assert allx.sum(1).max() == 4


def test_unknown_dataset_and_missing_folder(tmp_path):
    with pytest.raises(UserInputError, match="jsb, nottingham, musedata, piano"):
        load_dataset("bach")
    with pytest.raises(UserInputError, match="not found"):
        load_dataset("jsb", data_dir=tmp_path / "nowhere")
    with pytest.raises(UserInputError, match="JSB_Chorales.mat"):
        load_dataset("jsb", data_dir=tmp_path)


def test_collate_pads_with_zeros():
    a = np.ones((3, 88), np.uint8)
    b = np.zeros((5, 88), np.uint8)
    b[1, 7] = 1
    x, lengths = collate([a, b])
    assert x.shape == (2, 5, 88) and x.dtype == torch.float32
    assert lengths.tolist() == [3, 5]
    assert x[0, :3].eq(1).all() and x[0, 3:].eq(0).all() and x[1, 1, 7] == 1 and x[1].sum() == 1


def test_bucket_sampler_covers_each_sequence_once_and_is_seeded():
    lengths = list(np.random.default_rng(0).integers(1, 300, size=103))
    s = BucketBatchSampler(lengths, batch_size=8, pool=3)
    torch.manual_seed(1)
    first = list(s)
    torch.manual_seed(1)
    again = list(s)
    assert first == again and len(first) == len(s) == 13
    assert sorted(i for b in first for i in b) == list(range(103))
    fixed = list(BucketBatchSampler(lengths, batch_size=8, shuffle=False))
    flat = [i for b in fixed for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_loader_batches():
    data = load_dataset("jsb")
    x, lengths = next(iter(make_loader(data["valid"], 16, shuffle=False)))
    assert x.shape[0] == 16 and x.shape[2] == 88 and int(lengths.max()) == x.shape[1]
