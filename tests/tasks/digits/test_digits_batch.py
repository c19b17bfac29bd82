"""`grukit digits predict a.wav bad.wav c.wav`: every good file answered, one error line per bad file, exit 2;
a folder given as a file is called a folder."""

import shutil

import pytest

from ._digits_util import fsdd_file

GOOD = ["5_lucas_1.wav", "3_george_7.wav"]


@pytest.mark.slow
def test_batch_with_a_bad_file_answers_the_good_ones(tmp_path, cli):
    a = shutil.copy(fsdd_file(GOOD[0]), tmp_path / "a.wav")
    c = shutil.copy(fsdd_file(GOOD[1]), tmp_path / "c.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEnot really")
    folder = tmp_path / "recordings"
    folder.mkdir()
    code, out, err = cli("digits", "predict", a, bad, c, folder)
    assert code == 2 and "Traceback" not in err
    lines = out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [str(a), str(c)]
    assert [ln.split("\t")[1] for ln in lines] == ["5", "3"]  # what the shipped model says for them
    errs = err.strip().splitlines()
    assert len(errs) == 3 and all(e.startswith("error:") for e in errs)
    assert str(bad) in errs[0] and "cannot read audio file" in errs[0]
    assert str(folder) in errs[1] and "is a folder, not an audio file" in errs[1]
    assert errs[2] == "error: 2 of 4 files could not be read"
    # the good files' answers equal those of running them alone
    code, alone, _ = cli("digits", "predict", c)
    assert code == 0 and alone.strip() == lines[1]


def test_folder_given_as_file_says_folder(tmp_path, cli):
    for args in (["predict", tmp_path], ["stream", tmp_path, "--no-sleep"]):
        code, out, err = cli("digits", *args)
        assert code == 2 and out == "" and "is a folder, not an audio file" in err, (args, err)
        assert len(err.strip().splitlines()) == 1


def test_docs_page_quotes_the_sequence_noise_curve():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    curve = json.loads((root / "benchmarks" / "results" / "digits.json").read_text())[
        "sequence_noise_curve"
    ]["curve"]
    section = (root / "docs" / "digits.md").read_text()
    row = next(ln for ln in section.splitlines() if ln.startswith("| strings read exactly"))
    assert [c.strip() for c in row.strip("|").split("|")[1:]] == [
        str(c["strings_exactly_right"]) for c in curve
    ]
    head = next(
        ln for ln in section.splitlines() if ln.startswith("| pause noise standard deviation")
    )
    assert [float(c) for c in head.strip("|").split("|")[1:]] == [c["noise_std"] for c in curve]
