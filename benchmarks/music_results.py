"""Record music training runs in benchmarks/results/music.json and (optionally) ship their models.

    python benchmarks/music_results.py RUN_DIR [RUN_DIR ...] [--ship RUN_DIR ...] [--note TEXT]

Each RUN_DIR is a finished ``grukit music train`` run folder (metrics.json, config.json, model.safetensors).
Runs are merged into the JSON by folder name. ``--ship`` copies the run's model.safetensors to
``grukit/pretrained/music-<dataset>.safetensors``, re-evaluates the shipped file on valid and test with
``grukit.tasks.music.evaluate.evaluate_nll`` and refuses to ship if it does not reproduce the run's numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "music.json"
CHECK_SEQUENCES = (
    8  # the CI test re-evaluates the shipped files on the 8 shortest test sequences (cheap)
)


def _run_entry(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    cfg = m.get("config") or json.loads((run / "config.json").read_text())
    return {
        "run": run.name,
        "dataset": m["dataset"],
        "head": "frame_ar" if cfg.get("frame_ar") else "independent",
        "test_nll_per_step": m["model"]["nll_per_step"],
        "valid_nll_per_step": m["model"]["valid_nll_per_step"],
        "test_predicted_frames": m["model"]["frames"],
        "command": m["command"],
        "seed": m["seed"],
        "wall_time_s": m["wall_time_s"],
        "threads": m.get("threads"),
        "epochs_run": m.get("epochs_run"),
        "best_epoch": m.get("best_epoch"),
        "stopped_early": m.get("stopped_early"),
        "config": cfg,
        "grukit_version": m.get("grukit_version"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--ship", nargs="*", type=Path, default=[])
    ap.add_argument("--note", default=None, help="Machine note to store.")
    ap.add_argument(
        "--refresh-checks",
        action="store_true",
        help="Recompute every shipped model's quick check (the CHECK_SEQUENCES shortest test sequences).",
    )
    args = ap.parse_args(argv)

    import torch

    from grukit import load
    from grukit.tasks.music import PAPER
    from grukit.tasks.music.data import load_dataset
    from grukit.tasks.music.evaluate import evaluate_nll, shipped_model_path

    torch.set_num_threads(1)
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data.setdefault("task", "music")
    data["metric"] = (
        "negative log-likelihood per time step (nats): sum over all predicted frames of the split "
        "(first frame of each sequence not predicted) of the BCE summed over the 88 keys, divided "
        "by the number of predicted frames; standard Boulanger-Lewandowski et al. 2012 splits"
    )
    data["paper"] = {
        "source": "Chung et al. 2014 Table 2 (GRU, LSTM); Bai et al. 2018 TCN best (JSB, Nottingham)",
        **PAPER,
    }
    if args.note or "machine" not in data:
        data["machine"] = args.note or (
            f"{platform.processor() or platform.machine()}, 2 shared CPU cores, "
            f"torch {torch.__version__}"
        )
    runs = {r["run"]: r for r in data.get("runs", [])}
    for run in [*args.runs, *args.ship]:
        runs[run.name] = _run_entry(run)
    data["runs"] = sorted(runs.values(), key=lambda r: (r["dataset"], r["run"]))
    shipped = data.get("shipped", {})
    for run in args.ship:
        entry = runs[run.name]
        ds = entry["dataset"]
        dst = shipped_model_path(ds)
        model = load(run / "model.safetensors")
        splits = load_dataset(ds)
        test = evaluate_nll(model, splits["test"])["nll_per_step"]
        valid = evaluate_nll(model, splits["valid"])["nll_per_step"]
        if (
            abs(test - entry["test_nll_per_step"]) > 1e-4
            or abs(valid - entry["valid_nll_per_step"]) > 1e-4
        ):
            print(
                f"refusing to ship {run}: re-evaluation gives test {test}, valid {valid}; the run recorded "
                f"{entry['test_nll_per_step']}, {entry['valid_nll_per_step']}",
                file=sys.stderr,
            )
            return 1
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "model.safetensors", dst)
        shipped[ds] = {
            "file": str(dst.relative_to(ROOT)),
            "run": run.name,
            "head": entry["head"],
            "test_nll_per_step": test,
            "valid_nll_per_step": valid,
            "paper_gru": PAPER[ds]["gru"],
            "paper_lstm": PAPER[ds]["lstm"],
            "beats_paper_gru": test <= PAPER[ds]["gru"],
            "bytes": dst.stat().st_size,
        }
        print(
            f"shipped {dst.name}: test {test:.4f} valid {valid:.4f} (paper GRU {PAPER[ds]['gru']})"
        )
    for ds, rec in shipped.items():
        if args.refresh_checks or any(run.name == rec["run"] for run in args.ship):
            model = load(ROOT / rec["file"])
            test = load_dataset(ds)["test"]
            idx = sorted(range(len(test)), key=lambda i: (len(test[i]), i))[:CHECK_SEQUENCES]
            rec["quick_check"] = {
                "test_indices": idx,
                **evaluate_nll(model, [test[i] for i in idx]),
            }
    data["shipped"] = dict(sorted(shipped.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(OUT)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
