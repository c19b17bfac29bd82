"""`grukit convert SRC DST`: every format in and out, the printed self-check, and one-line errors (exit 2)."""

import numpy as np
import torch

import grukit

from ._util import TOL, keras_forward, keras_mod, keras_stack, maxdiff, ort_run, randomize


def test_chain_through_every_format(tmp_path, cli):
    src = randomize(torch.nn.GRU(3, 4, 2, bidirectional=True)).eval()
    torch.save(
        {"enc.gru." + k: v for k, v in src.state_dict().items()}
        | {"head.weight": torch.ones(2, 8)},
        tmp_path / "a.pt",
    )  # a GRU inside a bigger model's state_dict: the prefix is found
    chain = ["a.pt", "b.keras", "c.onnx", "d.safetensors", "e.pt"]
    for s, d in zip(chain, chain[1:]):
        code, out, err = cli("convert", tmp_path / s, tmp_path / d)
        assert code == 0, err
        assert "num_layers=2" in out and "bidirectional=True" in out and "FAILED" not in out
        assert out.count(" ok ") >= 1
    end = torch.load(tmp_path / "e.pt", weights_only=True)
    for k, v in src.state_dict().items():
        assert maxdiff(end[k], v) <= 1e-7
    x = torch.randn(3, 6, 3)
    with torch.no_grad():
        want = src(x.transpose(0, 1))[0].transpose(0, 1)
    assert (
        maxdiff(keras_forward(keras_mod().saving.load_model(tmp_path / "b.keras"), x.numpy()), want)
        <= TOL
    )
    # the ONNX file came from Keras, so it keeps Keras' batch-first input layout
    assert maxdiff(ort_run(tmp_path / "c.onnx", {"input": x.numpy()})[0], want) <= TOL


def test_keras_reset_before_to_onnx(tmp_path, cli):
    kmodel = keras_stack(3, 4, 1, False, reset_after=False, seed=5)
    kmodel.save(tmp_path / "k.keras")
    code, out, err = cli("convert", tmp_path / "k.keras", tmp_path / "k.onnx")
    assert code == 0, err
    assert "reset_after=False" in out
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    y = ort_run(tmp_path / "k.onnx", {"input": x})[0]  # batch-first, like the Keras source
    assert maxdiff(y, keras_forward(kmodel, x)) <= TOL
    # torch.nn.GRU has no reset-before form: refused, and no file is left behind
    code, out, err = cli("convert", tmp_path / "k.keras", tmp_path / "k.pt")
    assert code == 2 and "reset_after=False" in err and "Traceback" not in err
    assert not (tmp_path / "k.pt").exists()


def test_user_mistakes_are_one_line_exit_2(tmp_path, cli):
    grukit.save(grukit.GRU(3, 4), tmp_path / "m.safetensors")
    torch.save(torch.nn.GRU(3, 4), tmp_path / "module.pt")  # a pickled module, not a state_dict
    (tmp_path / "taken.onnx").write_bytes(b"keep me")
    cases = [
        (("nope.safetensors", "x.onnx"), "SRC not found"),
        (("m.safetensors", "x.txt"), "cannot tell the format"),
        (("m.safetensors", "taken.onnx"), "--overwrite"),
        (("module.pt", "x.onnx"), "state_dict"),
    ]
    for (s, d), msg in cases:
        code, out, err = cli("convert", tmp_path / s, tmp_path / d)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "taken.onnx").read_bytes() == b"keep me"
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.txt").exists()
    code, out, err = cli(
        "convert", tmp_path / "m.safetensors", tmp_path / "out.bin", "--to", "onnx"
    )
    assert code == 0 and (tmp_path / "out.bin").exists()


def test_reset_before_state_dict_needs_the_flag(tmp_path, cli):
    model = randomize(grukit.GRU(3, 4, reset_after=False)).eval()
    torch.save(model.state_dict(), tmp_path / "rb.pt")
    code, out, err = cli("convert", tmp_path / "rb.pt", tmp_path / "rb.onnx", "--reset-before")
    assert code == 0, err
    assert "reset_after=False" in out
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        assert maxdiff(ort_run(tmp_path / "rb.onnx", {"input": x.numpy()})[0], model(x)[0]) <= TOL


def test_keras_sources_without_sequences_or_reading_backwards(tmp_path, cli):
    keras = keras_mod()
    grukit.to_keras(
        randomize(grukit.GRU(3, 4, 2, bidirectional=True)), return_sequences=False
    ).save(tmp_path / "last.keras")
    back = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.GRU(4, return_sequences=True, go_backwards=True)]
    )
    from ._util import randomize_keras

    randomize_keras(back).save(tmp_path / "back.keras")
    code, out, err = cli("convert", tmp_path / "last.keras", tmp_path / "last.onnx")
    assert code == 0, err
    assert "FAILED" not in out and out.count(" ok ") == 2, (
        out
    )  # SRC run in Keras, DST in onnxruntime
    # a go_backwards layer has no plain-GRU form: refused (it used to be written as a forward GRU that
    # needs reversed input, i.e. a file computing something else than its source)
    code, out, err = cli("convert", tmp_path / "back.keras", tmp_path / "back.onnx")
    assert code == 2 and "go_backwards" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "back.onnx").exists()


def test_failed_self_check_removes_dst(tmp_path, monkeypatch, cli):
    import grukit.cli.convert as conv

    grukit.save(randomize(grukit.GRU(3, 4)), tmp_path / "m.safetensors")
    monkeypatch.setattr(
        conv, "TOL", 0.0
    )  # Keras rounds differently from torch, so any tolerance of 0 fails
    code, out, err = cli("convert", tmp_path / "m.safetensors", tmp_path / "m.keras")
    assert code == 1 and "self-check failed" in err and "FAILED" in out
    assert not (tmp_path / "m.keras").exists()


def test_task_model_needs_gru_only_and_says_what_is_left_out(tmp_path, cli):
    from pathlib import Path

    src = Path(grukit.__file__).parent / "pretrained" / "music-jsb.safetensors"
    code, out, err = cli("convert", src, tmp_path / "m.onnx")
    assert code == 2 and "MusicGRU" in err and "--gru-only" in err, err
    assert not (tmp_path / "m.onnx").exists()
    code, out, err = cli("convert", src, tmp_path / "m.onnx", "--gru-only")
    assert code == 0, err
    text = " ".join(out.split())
    assert "--gru-only: exporting MusicGRU.gru" in text and "left out:" in text and "head" in text
    model = grukit.load(src)
    x = torch.randn(4, 2, model.gru.input_size)
    with torch.no_grad():
        want = model.gru(x if not model.gru.batch_first else x.transpose(0, 1))[0]
    feed = x.numpy() if not model.gru.batch_first else x.transpose(0, 1).numpy()
    assert maxdiff(ort_run(tmp_path / "m.onnx", {"input": feed})[0], want) <= TOL


def test_empty_sources_and_missing_folders_are_one_line_errors(tmp_path, cli):
    (tmp_path / "zero.pt").write_bytes(b"")
    torch.save({}, tmp_path / "empty.pt")
    torch.save({"head.weight": torch.ones(2, 3)}, tmp_path / "nogru.pt")
    grukit.save(grukit.GRU(3, 4), tmp_path / "m.safetensors")
    grukit.save(grukit.MinGRU(3, 4), tmp_path / "min.safetensors")
    cases = [
        (("zero.pt", "a.onnx"), "empty file"),
        (("empty.pt", "a.onnx"), "empty state_dict"),
        (("nogru.pt", "a.onnx"), "found 0"),
        (("min.safetensors", "a.onnx"), "MinGRU"),
        (("m.safetensors", "missing/a.onnx"), "does not exist"),
    ]
    for (s, d), msg in cases:
        code, out, err = cli("convert", tmp_path / s, tmp_path / d)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "a.onnx").exists()


def test_sources_without_a_plain_gru_form_are_refused(tmp_path, cli):
    keras = keras_mod()
    from ._util import randomize_keras

    summed = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.Bidirectional(
                keras.layers.GRU(4, return_sequences=True), merge_mode="sum"
            ),
        ]
    )
    randomize_keras(summed).save(tmp_path / "sum.keras")
    code, out, err = cli("convert", tmp_path / "sum.keras", tmp_path / "sum.onnx")
    assert code == 2 and "merge_mode='sum'" in err, err
    chain = grukit.from_keras(summed)
    grukit.save(chain, tmp_path / "chain.safetensors")
    code, out, err = cli("convert", tmp_path / "chain.safetensors", tmp_path / "c.pt")
    assert code == 2 and "GRUChain" in err, err
    assert not (tmp_path / "sum.onnx").exists() and not (tmp_path / "c.pt").exists()
