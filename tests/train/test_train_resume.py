"""Resume from last.ckpt continues to the same final weights as an uninterrupted run (docs/conventions.md)."""

import csv

from train_toy import toy_loaders, toy_module

from grukit.train import fit


def _weights(module):
    return {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def test_resume_matches_uninterrupted_run(tmp_path):
    opts = dict(task="toy", seed=3, progress=False, plot=False, gradient_clip=0.5)
    # shuffled batches and dropout: both draw random numbers, so the RNG state must be restored right
    full = fit(
        toy_module(dropout=0.3), *toy_loaders(), output_dir=tmp_path / "full", epochs=4, **opts
    )

    first = fit(
        toy_module(dropout=0.3), *toy_loaders(), output_dir=tmp_path / "part", epochs=2, **opts
    )
    assert (first.run.path / "last.ckpt").is_file()
    # a fresh process would build a fresh module with different initial weights: resume must overwrite them
    resumed = fit(
        toy_module(seed=99, dropout=0.3), *toy_loaders(), epochs=4, resume=tmp_path / "part", **opts
    )

    assert resumed.run.path == tmp_path / "part"
    assert resumed.epochs_run == full.epochs_run == 4
    a, b = _weights(full.module), _weights(resumed.module)
    assert a.keys() == b.keys()
    for k in a:
        rel = (a[k] - b[k]).abs().max() / a[k].abs().max()
        assert rel <= 1e-6, (k, float(rel))
    # the weights really moved during the resumed part (the test would be void otherwise)
    assert any((_weights(first.module)[k] - b[k]).abs().max() > 1e-4 for k in b)

    rows_full = list(csv.DictReader(open(full.run.path / "log.csv")))
    rows_res = list(csv.DictReader(open(resumed.run.path / "log.csv")))
    assert [r["epoch"] for r in rows_res] == ["0", "1", "2", "3"]
    for rf, rr in zip(rows_full, rows_res):
        assert abs(float(rf["val_loss"]) - float(rr["val_loss"])) <= 1e-6 * max(
            1.0, abs(float(rf["val_loss"]))
        )
    assert resumed.best_epoch == full.best_epoch
