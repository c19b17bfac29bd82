"""Translation data: normalization, the hash split (deterministic, no leakage), the tokenizer, batching."""

import hashlib
import random
import unicodedata

import pytest
import torch

from grukit.errors import UserInputError
from grukit.tasks.translate import data as D


@pytest.fixture(scope="module")
def splits():
    return D.load_splits()


def test_normalize_nfkc_and_whitespace():
    assert D.normalize("  Je suis\u202fdésolé\u00a0!\t ") == "Je suis désolé !"
    assert D.normalize("Attends\u2026") == "Attends..."
    assert D.normalize("e\u0301") == "é"  # composed


def test_split_is_the_documented_hash():
    # independent recomputation of the documented rule: SHA-1 of the lower-cased normalized English, 8 bytes
    for en in ["Go.", "I am cold.", "Tom  is\u00a0here!", "Où est la gare ?"]:
        key = " ".join(unicodedata.normalize("NFKC", en).split()).lower()
        h = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % 100
        assert D.split_of(en) == ("train" if h < 90 else "valid" if h < 95 else "test")
    assert D.split_of("I AM COLD.") == D.split_of("i am   cold.")


def test_split_sizes_and_no_leakage(splits):
    n = sum(len(v) for v in splits.values())
    assert n == 142_787
    assert 0.88 < len(splits["train"]) / n < 0.92
    assert 0.04 < len(splits["valid"]) / n < 0.06 and 0.04 < len(splits["test"]) / n < 0.06
    keys = {s: {D.split_key(en) for en, _ in v} for s, v in splits.items()}
    assert (
        not keys["train"] & keys["valid"]
        and not keys["train"] & keys["test"]
        and not keys["valid"] & keys["test"]
    )
    # every translation of a test sentence is in test: count them straight from the file
    with open(D.find_data_dir(D.DATASET) / D.FILE, encoding="utf-8") as f:
        english = [line.split("\t")[0] for line in f]
    sample = sorted(keys["test"])[:200]
    want = sum(1 for en in english if D.split_key(en) in set(sample))
    assert sum(1 for en, _ in splits["test"] if D.split_key(en) in set(sample)) == want


def test_split_does_not_depend_on_order(splits):
    pairs = splits["valid"][:300] + splits["test"][:300] + splits["train"][:300]
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    a, b = D.split_pairs(pairs), D.split_pairs(shuffled)
    assert all(sorted(a[s]) == sorted(b[s]) for s in D.SPLITS)
    assert sorted(a["test"]) == sorted(splits["test"][:300])


def test_read_pairs_formats(tmp_path):
    p = tmp_path / "fra.txt"
    p.write_text(
        "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\nHi.\tSalut\u202f!\n\n"
    )
    assert D.read_pairs(p) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    p.write_text("Go.\tVa !\nno tab here\n")
    with pytest.raises(UserInputError, match=r"fra.txt:2: expected English<TAB>French"):
        D.read_pairs(p)
    p.write_text("Go.\t  \n")
    with pytest.raises(UserInputError, match="empty French"):
        D.read_pairs(p)
    with pytest.raises(UserInputError, match="not found"):
        D.read_pairs(tmp_path / "missing.txt")


@pytest.fixture(scope="module")
def tokenizer(splits):
    return D.SubwordTokenizer.train([fr for _, fr in splits["train"][:5000]], vocab_size=600)


def test_tokenizer_round_trip(tokenizer, splits):
    texts = [fr for _, fr in splits["test"][:300]] + [
        "Ça coûte 12,50\u202f€ — vraiment\u2009?",
        "日本語もOK 🙂",
        "  espaces   multiples ",
        "Œuvre « naïve »",
    ]
    for t in texts:
        ids = tokenizer.encode(t)
        assert ids and min(ids) >= len(D.SPECIALS) and max(ids) < tokenizer.vocab_size
        assert tokenizer.decode(ids) == D.normalize(t)
    assert tokenizer.encode_batch(texts[:20]) == [tokenizer.encode(t) for t in texts[:20]]
    again = D.SubwordTokenizer.from_json(tokenizer.to_json())
    assert [again.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
    assert tokenizer.vocab_size <= 600
    assert tokenizer.decode([D.BOS] + tokenizer.encode("Bonjour.") + [D.EOS, D.PAD]) == "Bonjour."


def test_tokenizer_learned_from_given_text_only():
    tok = D.SubwordTokenizer.train(["abc abc abc abc"] * 10, vocab_size=300)
    assert (
        len(tok.encode("abc")) == 1 and len(tok.encode("xyz")) == 3
    )  # merges only from the training text
    with pytest.raises(ValueError, match="vocab_size"):
        D.SubwordTokenizer.train(["a"], vocab_size=100)


def test_collate_and_bucket_sampler():
    ds = D.PairDataset([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    b = D.collate([ds[0], ds[1]])
    assert b["src"].tolist() == [[5, 6, 7], [8, 0, 0]] and b["src_len"].tolist() == [3, 1]
    assert b["tgt_out"].tolist() == [[9, 10, D.EOS, 0], [11, 12, 13, D.EOS]]
    assert b["tgt_in"].tolist() == [[D.BOS, 9, 10, 0], [D.BOS, 11, 12, 13]]
    lengths = [random.Random(i).randint(1, 30) for i in range(1000)]
    torch.manual_seed(3)
    batches = list(D.BucketBatchSampler(lengths, 32))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(D.BucketBatchSampler(lengths, 32)) == 32
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(
        batches
    )
    assert spread < 5  # length-bucketed (random batches would spread ~28)
    torch.manual_seed(3)
    assert (
        list(D.BucketBatchSampler(lengths, 32)) == batches
    )  # randomness from torch's global seed only
