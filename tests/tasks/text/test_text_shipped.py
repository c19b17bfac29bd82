"""The shipped text model reproduces benchmarks/results/text.json (on a valid slice, to stay fast), streams
reproducibly, and docs/text.md quotes that file."""

import json
from pathlib import Path

import pytest

from grukit.tasks.text.data import load_text, split_text
from grukit.tasks.text.evaluate import PRETRAINED, load_model, score_text
from grukit.tasks.text.generate import generate

ROOT = Path(__file__).resolve().parents[3]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "text.json").read_text())


def test_shipped_model_reproduces_the_recorded_slice_score():
    assert PRETRAINED.is_file() and PRETRAINED.stat().st_size < 25_000_000
    model, _ = load_model()
    check = RESULTS["shipped_model"]["check_slice"]
    text = split_text(load_text(), "valid")[: check["chars"]]
    got = score_text(model, text, streams=check["streams"])
    assert got["nats_per_char"] == pytest.approx(check["nats_per_char"], rel=1e-5)
    assert got["nats_per_char"] < RESULTS["baselines"]["unigram"]["nats_per_char"]
    a = "".join(generate(model, "ROMEO:", 60, seed=0))
    assert a == "".join(generate(model, "ROMEO:", 60, seed=0)) and len(a) == 60


def test_docs_page_quotes_the_results_file():
    section = (ROOT / "docs" / "text.md").read_text()  # the Text generation page
    rec = RESULTS["shipped_model"]["valid"]
    assert f"{rec['nats_per_char']:.4f}" in section and f"{rec['bits_per_char']:.4f}" in section
    assert f"{RESULTS['baselines']['unigram']['nats_per_char']:.4f}" in section
