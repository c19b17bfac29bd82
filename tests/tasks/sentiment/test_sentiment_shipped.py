"""The shipped model reproduces benchmarks/results/sentiment.json, and docs/sentiment.md quotes that file."""

import json
from pathlib import Path

import pytest

from grukit.tasks.sentiment.data import load_split
from grukit.tasks.sentiment.evaluate import PRETRAINED, accuracy, load_model

ROOT = Path(__file__).resolve().parents[3]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "sentiment.json").read_text())


def test_shipped_model_reproduces_recorded_accuracy():
    assert PRETRAINED.is_file() and PRETRAINED.stat().st_size < 25_000_000
    model, path = load_model()
    rec = RESULTS["shipped_model"]
    got = {}
    for split in ("test", "dev"):
        texts, labels = load_split(split)
        got[split] = accuracy(model, texts, labels)
        assert got[split]["n"] == rec[f"{split}_n"]
        assert got[split]["accuracy"] == pytest.approx(rec[f"{split}_accuracy"], abs=1e-9)
    # the majority-class baseline, computed here from the data (train's majority label scored on test):
    # the model must beat it, and the recorded baseline must be that number
    _, train_labels = load_split("train")
    _, test_labels = load_split("test")
    majority = int(2 * sum(train_labels) >= len(train_labels))
    majority_acc = sum(int(y == majority) for y in test_labels) / len(test_labels)
    assert got["test"]["accuracy"] > majority_acc + 0.2
    assert RESULTS["baselines_on_test"]["majority_class"]["accuracy"] == pytest.approx(majority_acc)


def test_docs_page_quotes_the_results_file():
    section = (ROOT / "docs" / "sentiment.md").read_text()  # the Sentiment analysis page
    rec = RESULTS["shipped_model"]
    assert f"{rec['test_accuracy']:.4f}" in section and f"{rec['dev_accuracy']:.4f}" in section
    for name, v in RESULTS["baselines_on_test"].items():
        assert f"{v['accuracy']:.4f}" in section, name
