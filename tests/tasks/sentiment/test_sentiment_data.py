"""SST-2 files: CRLF train with a 'sentence' header, LF dev/test with 'content', labelled test; the vocabulary
comes from train only; length buckets cover every phrase once, in an order fixed by (seed, epoch)."""

import pytest

from grukit.errors import UserInputError
from grukit.tasks.sentiment.data import (
    PAD,
    UNK,
    BucketBatchSampler,
    Encoder,
    SentimentDataset,
    build_vocab,
    collate,
    load_split,
    read_tsv,
    tokenize,
)

# SOURCE.md: rows, positives, negatives
COUNTS = {"train": (67_349, 37_569, 29_780), "dev": (872, 444, 428), "test": (1_821, 909, 912)}


@pytest.mark.parametrize("split", sorted(COUNTS))
def test_splits_counts_and_labels(split):
    texts, labels = load_split(split)
    n, pos, neg = COUNTS[split]
    assert len(texts) == len(labels) == n
    assert sum(labels) == pos and labels.count(0) == neg
    assert not any("\r" in t or "\t" in t or not t.strip() for t in texts)  # CRLF stripped


def test_known_first_rows():
    tr, ytr = load_split("train")
    assert (tr[0], ytr[0]) == ("hide new secretions from the parental units", 0)
    dev, ydev = load_split("dev")
    assert (dev[0], ydev[0]) == ("one long string of cliches .", 0)


def test_reader_accepts_both_line_endings_and_refuses_bad_files(tmp_path):
    crlf = tmp_path / "a.tsv"
    crlf.write_bytes(b"label\tsentence\r\n1\tgood film \r\n0\tbad\r\n")
    assert read_tsv(crlf) == (["good film ", "bad"], [1, 0])
    lf = tmp_path / "b.tsv"
    lf.write_bytes(b"label\tcontent\n1\tgood film\n")
    assert read_tsv(lf) == (["good film"], [1])
    bad_header = tmp_path / "c.tsv"
    bad_header.write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(UserInputError, match="expected the header"):
        read_tsv(bad_header)
    bad_label = tmp_path / "d.tsv"
    bad_label.write_text("label\tcontent\n1\tok\n2\tweird\n")
    with pytest.raises(UserInputError, match=r"d\.tsv:3: expected 'LABEL<TAB>TEXT'"):
        read_tsv(bad_label)
    with pytest.raises(UserInputError, match="not found"):
        read_tsv(tmp_path / "missing.tsv")


def test_vocabulary_is_built_from_train_only():
    tr, _ = load_split("train")
    vocab = build_vocab(tr)
    assert vocab[:2] == [PAD, UNK]
    train_words = {w for t in tr for w in tokenize(t)}
    assert set(vocab[2:]) == train_words
    dev, _ = load_split("dev")
    dev_only = {w for t in dev for w in tokenize(t)} - train_words
    assert dev_only  # SST-2 dev has words train lacks ...
    enc = Encoder(vocab)
    for w in sorted(dev_only)[:20]:
        assert enc.encode(w) == [1]  # ... and they become <unk>
    assert build_vocab(["a b b c c c"], min_freq=2) == [PAD, UNK, "c", "b"]


def test_collate_pads_and_keeps_lengths():
    enc = Encoder([PAD, UNK, "good", "bad", "film"])
    ds = SentimentDataset(["good film", "bad", "unknownword film good"], [1, 0, 1], enc)
    ids, lengths, y = collate([ds[i] for i in range(3)])
    assert ids.tolist() == [[2, 4, 0], [3, 0, 0], [1, 4, 2]]
    assert lengths.tolist() == [2, 1, 3] and y.tolist() == [1, 0, 1]


def test_bucket_sampler_covers_everything_once_deterministically():
    lengths = [(i * 7919) % 53 + 1 for i in range(1000)]
    s = BucketBatchSampler(lengths, 32, seed=3, pool=4)
    s.set_epoch(0)
    a = list(s)
    assert sorted(i for b in a for i in b) == list(range(1000)) and len(a) == len(s)
    assert list(s) == a  # same (seed, epoch), same batches
    s.set_epoch(1)
    assert list(s) != a
    # buckets: each batch's lengths span less than the whole range on average
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 20
