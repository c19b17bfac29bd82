"""`grukit text perplexity`: the progress callback counts every scored character, bad --text-file / --json
paths are refused up front, and the docs page quotes the recorded speed."""

import json
from pathlib import Path

import pytest

from grukit.tasks.text.evaluate import load_model, score_text

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("streams", [1, 3])
def test_progress_counts_every_scored_character(streams):
    model, _ = load_model()
    seen = []
    res = score_text(
        model,
        "ROMEO:\nWhat light through yonder window breaks?\n" * 40,
        streams,
        64,
        progress=seen.append,
    )
    assert sum(seen) == res["chars"] and len(seen) > 1


def test_bad_paths_refused(tmp_path, cli):
    code, out, err = cli("text", "perplexity", "--text-file", tmp_path)
    assert code == 2 and out == "" and "is a folder, not a file" in err
    f = tmp_path / "t.txt"
    f.write_text("ROMEO: hello there\n")
    (tmp_path / "notes.txt").write_text("x")
    code, out, err = cli(
        "text",
        "perplexity",
        "--text-file",
        f,
        "--json",
        tmp_path / "notes.txt" / "r.json",
    )
    assert code == 2 and out == "" and "notes.txt is a file, not a folder" in err
    f.write_bytes(b"\xff\xfe bad")
    code, out, err = cli("text", "perplexity", "--text-file", f)
    assert code == 2 and "not UTF-8" in err


def test_docs_page_quotes_the_speed_measurement():
    rec = json.loads((ROOT / "benchmarks" / "results" / "perplexity_speed.json").read_text())
    section = (ROOT / "docs" / "text.md").read_text()
    sp = rec["sequence_path"]
    assert (
        f"{sp['streams_1']['cpu_ms_per_char']:.3f} ms of CPU per character at `--streams 1`"
        in section
    )
    assert f"{sp['streams_8']['cpu_ms_per_char']:.3f} at `--streams 8`" in section
    assert f"{rec['step_loop_baseline']['cpu_ms_per_char']:.2f} ms" in section
    assert all(v["cpu_ms_per_char"] <= rec["target_cpu_ms_per_char"] for v in sp.values())
