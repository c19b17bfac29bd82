"""tiny-shakespeare: the documented split, the vocabulary and the truncated-BPTT batch layout."""

import pytest
import torch

from grukit.errors import UserInputError
from grukit.tasks.text.data import CharVocab, StreamBatches, load_text, split_text, stream_layout


def test_split_is_first_90_percent_then_last_10():
    text = load_text()
    assert len(text) == 1_115_394  # SOURCE.md
    train, valid = split_text(text, "train"), split_text(text, "valid")
    assert len(train) == int(0.9 * 1_115_394) == 1_003_854
    assert train + valid == text
    assert text.startswith(train) and text.endswith(valid)
    with pytest.raises(UserInputError, match="split must be one of"):
        split_text(text, "test")


def test_vocab_is_the_65_characters_and_round_trips():
    text = load_text()
    vocab = CharVocab.from_text(text)
    assert len(vocab) == 65 and vocab.chars == "".join(sorted(set(text)))
    assert set(split_text(text, "valid")) <= set(
        split_text(text, "train")
    )  # no unseen character in valid
    sample = text[:1000]
    ids = vocab.encode(sample)
    assert ids.dtype == torch.long and vocab.decode(ids) == sample
    assert [vocab.chars[i] for i in ids[:20].tolist()] == list(sample[:20])
    with pytest.raises(UserInputError, match="not in the model's vocabulary"):
        vocab.encode("caf\u00e9")


def test_stream_batches_continue_each_row_and_shift_targets():
    ids = torch.arange(1000)
    ds = StreamBatches(ids, batch_size=4, seq_len=7)
    streams = ids[:1000].view(4, 250)
    assert len(ds) == (250 - 1) // 7
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (4, 7)
        assert torch.equal(y[:, :-1], x[:, 1:])  # target = input shifted by one
        assert torch.equal(x, streams[:, 7 * i : 7 * i + 7])
        if i:
            assert torch.equal(
                x[:, 0], ds[i - 1][0][:, -1] + 1
            )  # row b continues row b of the batch before
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_epoch_parts_partition_the_windows():
    ids = torch.arange(5000)
    whole = StreamBatches(ids, 8, 10)
    parts = [StreamBatches(ids, 8, 10, part=k, parts=3) for k in range(3)]
    got = [p[i][0] for p in parts for i in range(len(p))]
    assert len(got) == len(whole)
    assert all(torch.equal(a, whole[i][0]) for i, a in enumerate(got))


def test_too_little_text_is_refused():
    with pytest.raises(UserInputError, match="too few"):
        stream_layout(torch.arange(10), 8)
    with pytest.raises(UserInputError, match="too few"):
        StreamBatches(torch.arange(100), 4, 30, part=0, parts=2)
