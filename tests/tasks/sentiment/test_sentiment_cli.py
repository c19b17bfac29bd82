"""`grukit sentiment predict|evaluate` under bad input and real use: empty text refused, known-word counts
always reported, unknown-only text warned about, labelled TSV files scored, occlusion in bounded chunks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grukit.tasks.sentiment import predict as P
from grukit.tasks.sentiment.evaluate import load_model

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model():
    return load_model()[0]


@pytest.mark.parametrize(
    "args, match",
    [
        (["predict", ""], "the sentence is empty"),
        (["predict", "   \t "], "the sentence is empty"),
        (["predict", "a fine film .", " "], "sentence 2 is empty"),
        (["predict", "--explain", ""], "the sentence is empty"),
    ],
)
def test_empty_text_refused(args, match, cli):
    code, out, err = cli("sentiment", *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error:") and match in err and len(err.strip().splitlines()) == 1


def test_known_count_always_and_warning_when_nothing_is_known(model, cli):
    code, out, err = cli("sentiment", "predict", "--json", "a gorgeous film", "😀 电影 👍")
    assert code == 0, err
    first, second = (json.loads(ln) for ln in out.strip().splitlines())
    vocab = set(model.encoder.vocab)
    assert first["n_words"] == 3 and first["known"] == sum(
        w in vocab for w in "a gorgeous film".split()
    )
    assert first["known"] == 3 and first["unknown_words"] == []
    assert second["n_words"] == 3 and second["known"] == 0
    assert second["unknown_words"] == ["😀", "电影", "👍"]
    assert "warning: none of the 3 word(s) of sentence 2" in err
    assert "sentence 1" not in err  # the known one is not warned about


def test_table_shows_known_count(cli):
    code, out, err = cli("sentiment", "predict", "a zzqxj film")
    assert code == 0 and "known 2/3" in out and err == ""


@pytest.mark.parametrize("option", ["--file"])
def test_folder_given_as_file_says_folder(tmp_path, option, cli):
    for verb in ("predict", "evaluate"):
        code, out, err = cli("sentiment", verb, option, tmp_path)
        assert code == 2 and out == "" and "is a folder, not a file" in err, (verb, err)


def test_evaluate_file_scores_match_predict(tmp_path, cli):
    rows = [
        ("a gorgeous , witty , seductive movie .", "1"),
        ("i did n't like it at all", "negative"),
        ("the plot is not very good , but the acting is superb .", "positive"),
        ("dull , lifeless and far too long .", "0"),
        ("an utterly charmless , tedious mess", "1"),  # labelled against the obvious reading
    ]
    tsv = tmp_path / "labelled.tsv"
    tsv.write_text("text\tlabel\n" + "\n".join(f"{t}\t{y}" for t, y in rows) + "\n\n")
    code, out, err = cli("sentiment", "evaluate", "--file", tsv, "--json", tmp_path / "r.json")
    assert code == 0, err
    res = json.loads((tmp_path / "r.json").read_text())
    # the oracle: predict's own labels, counted by hand
    code, pout, _ = cli("sentiment", "predict", "--json", *[t for t, _ in rows])
    pred = [int(json.loads(ln)["label"] == "positive") for ln in pout.strip().splitlines()]
    truth = [1, 0, 1, 0, 1]
    conf = [[0, 0], [0, 0]]
    for y, p in zip(truth, pred):
        conf[y][p] += 1
    tp, fp, fn = conf[1][1], conf[0][1], conf[1][0]
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert res["n"] == 5 and res["confusion"] == conf
    assert res["accuracy"] == pytest.approx((conf[0][0] + conf[1][1]) / 5)
    assert res["f1_positive"] == pytest.approx(f1)
    assert f"accuracy {res['accuracy']:.4f}" in out and f"F1 (positive) {f1:.4f}" in out


@pytest.mark.parametrize(
    "content, match",
    [
        ("a fine film\tmaybe\n", ":1: expected 'TEXT<TAB>LABEL'"),
        ("a fine film\t1\nno tab here\n", ":2: expected 'TEXT<TAB>LABEL'"),
        ("\t1\n", ":1: expected"),
        ("\n\n", "no labelled lines"),
    ],
)
def test_evaluate_file_bad_lines_refused_and_nothing_written(tmp_path, content, match, cli):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(content)
    code, out, err = cli("sentiment", "evaluate", "--file", tsv, "--json", tmp_path / "r.json")
    assert code == 2 and out == "" and match in err and str(tsv) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]


def test_explain_in_chunks_equals_one_batch(model, monkeypatch):
    text = "the plot is not very good , but the acting is superb ."
    ids = torch.tensor(model.encoder.encode(text))
    T = ids.numel()
    # the oracle: every occlusion in one batch, built independently of the chunking code
    batch = ids.repeat(T + 1, 1)
    for i in range(T):
        batch[i + 1, i] = model.encoder.index["<unk>"]
    with torch.inference_mode():
        logits = model(batch, torch.full((T + 1,), T)).double()
    lo = logits[:, 1] - logits[:, 0]
    want = (lo[0] - lo[1:]).tolist()
    monkeypatch.setattr(P, "TOKENS_PER_CHUNK", 3 * T)  # 3 sequences per chunk: 5 chunks
    assert len(list(P.occlusion_log_odds(model, ids))) == 5
    got = P.explain(model, text)
    assert got.contributions == pytest.approx(want, abs=1e-5)
    assert got.p_positive == pytest.approx(float(torch.sigmoid(lo[0])), abs=1e-6)


def test_explain_refuses_overlong_input(cli):
    text = " ".join(["good"] * 30)
    code, out, err = cli("sentiment", "predict", "--explain", "--explain-max-words", "20", text)
    assert code == 2 and out == "" and "at most 20 words" in err and "got 30" in err


_PEAK = """
import random, resource, sys
from grukit.tasks.sentiment.evaluate import load_model
from grukit.tasks.sentiment.predict import explain
m, _ = load_model()
explain(m, "a good film")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
random.seed(0)
text = " ".join(random.choice(m.encoder.vocab[2:3000]) for _ in range(int(sys.argv[1])))
explain(m, text)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.slow
def test_explain_memory_stays_bounded_as_input_grows():
    """600 words: one batch of all 601 occlusions needed ~1.8 GB of activations; in chunks it stays small.
    (The 2,000- and 10,000-word measurements are in benchmarks/results/sentiment_explain.json.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", _PEAK, "600"], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr
    grew_mb = int(r.stdout.strip().splitlines()[-1])
    assert grew_mb < 200, grew_mb


@pytest.mark.slow
def test_piped_output_keeps_long_sentences_whole():
    sentence = (
        " ".join(["a remarkably long , sprawling and yet oddly gripping sentence ,"] * 6) + " ."
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": ""}
    env.pop("COLUMNS")
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from grukit.cli import main; main()",
            "sentiment",
            "predict",
            sentence,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(sentence) > 300 and len(lines) == 1 and lines[0].endswith(sentence)


def test_docs_page_quotes_the_explain_memory_measurement():
    rec = json.loads((ROOT / "benchmarks" / "results" / "sentiment_explain.json").read_text())
    section = (ROOT / "docs" / "sentiment.md").read_text()
    by_words = {r["words"]: r for r in rec["runs"]}
    assert all(r["peak_rss_mb"] <= rec["target_peak_mb"] for r in rec["runs"])
    assert f"{by_words[2000]['peak_rss_mb']:.0f} MB for the whole process at 2,000 words" in section
    assert f"{by_words[10000]['peak_rss_mb']:.0f} MB at" in section
