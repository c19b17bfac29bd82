"""The shipped model: a valid model file within the size limit that reproduces the recorded numbers."""

import json
from pathlib import Path

import pytest
import torch

import grukit
from grukit.serialization import read_header
from grukit.tasks.translate import data as D
from grukit.tasks.translate.evaluate import evaluate
from grukit.tasks.translate.predict import SHIPPED, load_bundle, translate

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "translate.json"


@pytest.fixture(scope="module")
def recorded():
    return json.loads(RESULTS.read_text())["shipped"]


def test_shipped_file(recorded):
    assert SHIPPED.is_file() and SHIPPED.stat().st_size <= 25 * 2**20
    header = read_header(SHIPPED)
    assert header["task"] == "translate" and header["stored_dtype"] == "float16"
    model = grukit.load(SHIPPED)
    assert sum(p.numel() for p in model.parameters()) == recorded["parameters"]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_shipped_model_reproduces_recorded_scores(recorded):
    torch.set_num_threads(1)
    check = recorded["check_first_200_test_pairs"]
    bundle = load_bundle(None)
    res = evaluate(
        bundle,
        D.load_splits()["test"][: check["limit"]],
        beam_size=check["beam"],
        length_penalty=check["length_penalty"],
    )
    for k in ("bleu", "chrf", "bleu_short", "chrf_short", "bleu_multiref"):
        assert res["model"][k] == pytest.approx(check[k], abs=0.05), k
    examples = recorded["examples"]
    assert translate(bundle, [e["en"] for e in examples], beam_size=check["beam"]) == [
        e["fr"] for e in examples
    ]
