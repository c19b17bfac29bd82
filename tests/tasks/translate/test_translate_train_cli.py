"""A smoke training run on a tiny slice (loss falls, pairs memorized, run folder written, resume), and the
``grukit translate`` commands on its model: predict (sentence, --file, --show-attention), evaluate, errors."""

import dataclasses
import json

import pytest
import torch
from support import one_line_error

from grukit.tasks.translate import data as D
from grukit.tasks.translate.predict import load_bundle, translate
from grukit.tasks.translate.train import TrainConfig, train

CFG = dict(
    batch_size=8,
    lr=1e-2,
    label_smoothing=0.0,
    src_vocab=300,
    tgt_vocab=300,
    emb_dim=32,
    enc_hidden=32,
    dec_hidden=64,
    dropout=0.0,
    steps_per_epoch=None,
    bf16=False,
    lr_patience=None,
)


def _pairs():
    """Eight short training pairs with distinct English sentences."""
    seen, out = set(), []
    for en, fr in D.load_splits()["train"]:
        if en not in seen and len(en.split()) >= 3:
            out.append((en, fr))
        seen.add(en)
        if len(out) == 8:
            return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    pairs = _pairs()
    run = tmp_path_factory.mktemp("translate") / "run"
    splits = {"train": pairs * 8, "valid": pairs, "test": pairs}
    result = train(
        TrainConfig(epochs=18, **CFG),
        output_dir=run,
        progress=False,
        evaluate_beam=None,
        splits=splits,
    )
    return pairs, run, result


def test_loss_falls_and_pairs_are_memorized(trained):
    pairs, run, result = trained
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 18 and losses[-1] < 0.25 * losses[0]
    for name in ("model.safetensors", "last.ckpt", "tokenizers.json", "log.csv", "config.json"):
        assert (run / name).is_file(), name
    bundle = load_bundle(run)  # the best-on-validation model file, with its tokenizers
    english = [en for en, _ in pairs]
    for beam in (1, 3):
        out = translate(bundle, english, beam_size=beam)
        exact = sum(o == fr for o, (_, fr) in zip(out, pairs))
        assert exact >= 6, list(zip(out, pairs))


def test_resume_gives_the_same_weights(trained, tmp_path):
    pairs, _, _ = trained
    splits = {"train": pairs * 4, "valid": pairs, "test": pairs}
    cfg = dict(CFG, dropout=0.3, batch_size=4)  # shuffling and dropout both active
    full = train(
        TrainConfig(epochs=3, **cfg),
        output_dir=tmp_path / "full",
        progress=False,
        evaluate_beam=None,
        splits=splits,
    )
    train(
        TrainConfig(epochs=2, **cfg),
        output_dir=tmp_path / "r",
        progress=False,
        evaluate_beam=None,
        splits=splits,
    )
    tok_before = (tmp_path / "r" / "tokenizers.json").read_text()
    more = train(
        TrainConfig(epochs=3, **cfg),
        resume=tmp_path / "r",
        progress=False,
        evaluate_beam=None,
        splits=splits,
    )
    assert [h["epoch"] for h in more.history] == [0, 1, 2]
    assert (tmp_path / "r" / "tokenizers.json").read_text() == tok_before
    a, b = full.module.model.state_dict(), more.module.model.state_dict()
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6 * a[k].abs().max().clamp(min=1e-12), k


@pytest.mark.slow
def test_predict_file_and_errors_from_the_console(trained, tmp_path, cli_subprocess):
    pairs, run, _ = trained
    f = tmp_path / "in.txt"
    f.write_text(f"{pairs[0][0]}\n\n{pairs[1][0]}\n")
    r = cli_subprocess(
        "translate", "predict", "--file", str(f), "--checkpoint", str(run), "--beam", "1"
    )
    assert r.code == 0, r.err
    want = translate(load_bundle(run), [pairs[0][0], pairs[1][0]], beam_size=1)
    assert r.out.split("\n")[:3] == [want[0], "", want[1]]
    r = cli_subprocess("translate", "predict", "   ", "--checkpoint", str(run))
    one_line_error(r, "empty")


def test_predict_errors_and_attention(trained, tmp_path, cli):
    pairs, run, _ = trained
    long = " ".join(["word"] * 300)
    one_line_error(cli("translate", "predict", long, "--checkpoint", run), "too long")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    r = cli("translate", "predict", "--file", empty, "--checkpoint", run)
    one_line_error(r, "no non-empty lines")
    one_line_error(cli("translate", "predict", "--checkpoint", run), "--file")
    r = cli("translate", "predict", "Hi.", "--checkpoint", tmp_path / "nope")
    one_line_error(r, "--checkpoint")
    png = tmp_path / "attn.png"
    r = cli(
        "translate", "predict", pairs[2][0], "--checkpoint", str(run), "--show-attention", str(png)
    )
    assert r.code == 0, r.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, attn = translate(load_bundle(run), [pairs[2][0]], return_attention=True)
    n_src = len(load_bundle(run).src_tok.encode(pairs[2][0]))
    assert attn[0].shape[1] == n_src and torch.allclose(
        attn[0].sum(-1), torch.ones(attn[0].shape[0]), atol=1e-5
    )


def test_evaluate_matches_sacrebleu_on_predictions(trained, tmp_path, cli):
    import sacrebleu

    pairs, run, _ = trained
    out = tmp_path / "scores.json"
    r = cli(
        "translate",
        "evaluate",
        "--checkpoint",
        str(run),
        "--limit",
        "30",
        "--beam",
        "2",
        "--output",
        str(out),
    )
    assert r.code == 0, r.err
    res = json.loads(out.read_text())
    test = D.load_splits()["test"][:30]
    hyps = translate(load_bundle(run), [en for en, _ in test], beam_size=2)
    refs = [fr for _, fr in test]
    assert res["model"]["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.01
    )
    assert res["model"]["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs]).score, abs=0.01
    )
    short = [i for i, (en, _) in enumerate(test) if len(en.split()) <= 10]
    assert res["subsets"]["short_pairs"] == len(short)
    assert res["model"]["bleu_short"] == pytest.approx(
        sacrebleu.corpus_bleu([hyps[i] for i in short], [[refs[i] for i in short]]).score, abs=0.01
    )


def test_multiref_bleu_uses_every_reference():
    import sacrebleu

    from grukit.tasks.translate.evaluate import multiref_bleu

    hyps = ["le chat est sur le tapis", "il fait très froid ce matin"]
    refs = [["le chat dort sur le tapis", "le chat est sur le tapis"], ["il fait froid ce matin"]]
    # the first hypothesis equals its second reference; pad the missing one with an unmatched dummy oracle
    two = sacrebleu.corpus_bleu(hyps, [[refs[0][0], refs[1][0]], [refs[0][1], "zzz"]]).score
    assert multiref_bleu(hyps, refs) == pytest.approx(two, abs=0.01)
    assert multiref_bleu(hyps, refs) > sacrebleu.corpus_bleu(hyps, [[refs[0][0], refs[1][0]]]).score


def test_init_from_starts_with_the_model_weights(trained, tmp_path):
    pairs, run, _ = trained
    splits = {"train": pairs, "valid": pairs, "test": pairs}
    cfg = TrainConfig(
        epochs=1, **(CFG | {"lr": 0.0, "src_vocab": 999, "emb_dim": 7})
    )  # sizes come from the file
    res = train(
        dataclasses.replace(cfg, init_from=str(run)),
        output_dir=tmp_path / "i",
        progress=False,
        evaluate_beam=None,
        splits=splits,
    )
    src = load_bundle(run)
    got = res.module.model.state_dict()
    assert res.module.model.config == src.model.config
    assert all(torch.equal(got[k], v) for k, v in src.model.state_dict().items())
    assert (
        json.loads((tmp_path / "i" / "tokenizers.json").read_text())["src_tokenizer"]
        == src.src_tok.to_json()
    )


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_cli_resume_refuses_a_conflicting_data_option(trained, cli):
    _, run, _ = trained
    before = _files(run)
    for extra, msg in (
        (["--limit-train-pairs", "100"], "--limit-train-pairs None, got 100"),  # a data option
        (["--max-len", "20"], "--max-len 32, got 20"),
        (["--vocab", "500"], "--vocab 300, got 500"),  # one flag, two fields
    ):
        code, _, err = cli("translate", "train", "--resume", run, *extra)
        assert code == 2 and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert _files(run) == before


def test_resume_restores_the_saved_options(trained, tmp_path):
    import shutil

    pairs, run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    splits = {"train": pairs * 8, "valid": pairs, "test": pairs}
    # the default sizes (256/512, vocab 8000) would not fit last.ckpt: the stored tiny ones must come back
    more = train(
        TrainConfig(epochs=19), resume=copy, progress=False, evaluate_beam=None, splits=splits
    )
    assert more.module.model.config.dec_hidden == CFG["dec_hidden"] and more.epochs_run == 19
    cfg = json.loads((copy / "config.json").read_text())
    assert {k: cfg[k] for k in CFG} == CFG and cfg["epochs"] == 19


def test_cli_existing_output_dir_needs_overwrite(trained, cli):
    _, run, _ = trained
    before = _files(run)
    code, _, err = cli("translate", "train", "--output-dir", run)
    assert code == 2 and "already holds files" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and _files(run) == before
