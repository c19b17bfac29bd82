"""Spoken digits (FSDD): record results in benchmarks/results/digits.json.

    # leave-one-speaker-out, 6 folds, small model, few epochs, 1 CPU thread (records CPU seconds per fold)
    python benchmarks/digits_results.py loso --epochs 8 --hidden-size 32

    # official split: copy the best models of two `grukit digits train` runs into grukit/pretrained/,
    # evaluate the shipped files on the official test set (offline and streaming) and record everything
    python benchmarks/digits_results.py official runs/digits-offline-running runs/digits-stream \
        --alternative runs/digits-offline

    # stream every official test file through the shipped streaming model; compare with offline
    python benchmarks/digits_results.py streamcheck --chunk-ms 100

    # predict --sequence on 100 strings of 4 random test files joined by noisy pauses, at three noise levels
    python benchmarks/digits_results.py sequences --noise 2e-4 1e-3 3e-3
    # the same on strings of validation files (for tuning; prints only)
    python benchmarks/digits_results.py sequences --split val

Each section is merged into the JSON file, so the two commands can run at different times.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "digits.json"


def _machine() -> str:
    return (
        f"{platform.machine()} {platform.processor() or ''} Linux, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s); a 2-core machine shared with other jobs (wall time "
        f"inflated, CPU time is the fair number)".replace("  ", " ")
    )


def _cpu() -> str:
    """The CPU's model name as ``lscpu`` reports it (empty when lscpu is missing)."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    return next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), ""
    )


def _merge(section: str, value: dict) -> None:
    from grukit.train import write_json

    data = json.loads(OUT.read_text()) if OUT.is_file() else {"task": "digits", "dataset": "fsdd"}
    data[section] = value
    data["grukit_version"] = __import__("grukit").__version__
    write_json(OUT, data)
    print(f"wrote {OUT} [{section}]")


def loso(args) -> None:
    from grukit.datasets import find_data_dir
    from grukit.tasks.digits import data as D
    from grukit.tasks.digits.evaluate import summarize
    from grukit.tasks.digits.model import DigitsConfig
    from grukit.tasks.digits.train import predict_logits, prepare, train_model

    torch.set_num_threads(args.threads)
    recs = D.list_recordings(find_data_dir(D.DATASET, args.data_dir))
    spec = D.FeatureSpec()
    c0, w0 = time.process_time(), time.perf_counter()
    raw_all = {r.path: x for r, x in zip(recs, D.load_raw_features(recs, spec))}
    feat_cpu, feat_wall = time.process_time() - c0, time.perf_counter() - w0
    folds = {}
    for speaker in D.SPEAKERS:
        parts = D.speaker_split(recs, speaker)
        raw = {k: [raw_all[r.path] for r in v] for k, v in parts.items()}
        labels = {k: [r.digit for r in v] for k, v in parts.items()}
        cfg = DigitsConfig(
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            bidirectional=not args.unidirectional,
            dropout=args.dropout,
            pooling=args.pooling,
            normalization=args.normalization,
        )
        prepared, cfg = prepare(raw, labels, cfg)
        c0, w0 = time.process_time(), time.perf_counter()
        res = train_model(
            prepared,
            cfg,
            epochs=args.epochs,
            seed=args.seed,
            mask_bands=args.mask_bands,
            mask_frames=args.mask_frames,
            stretch=args.stretch,
            shift=args.shift,
            output_dir=Path(args.runs) / f"digits-loso-{speaker}",
            progress=False,
            plot=False,
        )
        model = res.best_model()
        test = summarize(
            predict_logits(model, prepared.features["test"]),
            labels["test"],
            [speaker] * len(labels["test"]),
        )
        val = summarize(
            predict_logits(model, prepared.features["val"]),
            labels["val"],
            [r.speaker for r in parts["val"]],
        )
        folds[speaker] = {
            "test_accuracy": test["accuracy"],
            "val_accuracy": val["accuracy"],
            "per_digit": test["per_digit"],
            "confusion": test["confusion"],
            "best_epoch": res.best_epoch,
            "cpu_time_s": round(time.process_time() - c0, 1),
            "wall_time_s": round(time.perf_counter() - w0, 1),
        }
        print(
            f"{speaker:10s} test {test['accuracy']:.4f} val {val['accuracy']:.4f} "
            f"cpu {folds[speaker]['cpu_time_s']} s",
            flush=True,
        )
    accs = [f["test_accuracy"] for f in folds.values()]
    _merge(
        args.section,
        {
            "description": "6 folds: test = all 500 files of one speaker; train = the other 5 speakers' files with "
            "index 0-4 and 10-49, val = their index 5-9 (best epoch on val accuracy); fixed small "
            "model, few epochs, 1 CPU thread",
            "command": " ".join(["python", *sys.argv]),
            "seed": args.seed,
            "model": {
                "bidirectional": not args.unidirectional,
                "normalization": args.normalization,
                "hidden_size": args.hidden_size,
                "num_layers": args.num_layers,
                "pooling": args.pooling,
                "dropout": args.dropout,
                "epochs": args.epochs,
                "mask_bands": args.mask_bands,
                "mask_frames": args.mask_frames,
                "stretch": args.stretch,
                "shift": args.shift,
            },
            "threads": args.threads,
            "mean_accuracy": float(np.mean(accs)),
            "min_accuracy": float(np.min(accs)),
            "folds": folds,
            "feature_cpu_time_s": round(feat_cpu, 1),
            "feature_wall_time_s": round(feat_wall, 1),
            "total_cpu_time_s": round(feat_cpu + sum(f["cpu_time_s"] for f in folds.values()), 1),
            "machine": _machine(),
        },
    )


def official(args) -> None:
    import grukit
    from grukit.tasks.digits.evaluate import evaluate_records, split_records
    from grukit.tasks.digits.predict import OFFLINE_MODEL, STREAM_MODEL

    torch.set_num_threads(args.threads)
    out = {}
    jobs = [("offline", args.offline_run, OFFLINE_MODEL), ("stream", args.stream_run, STREAM_MODEL)]
    jobs += [(f"not_shipped_{Path(r).name}", r, None) for r in args.alternative]
    for name, run, dest in jobs:
        run = Path(run)
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        if dest is not None and not args.no_copy:
            shutil.copy2(run / "model.safetensors", dest)
            dest.chmod(0o644)
        model = grukit.load(dest if dest is not None else run / "model.safetensors")
        res = {
            split: evaluate_records(model, split_records(args.data_dir, split))
            for split in ("val", "test")
        }
        out[name] = {
            "model_file": str(dest.relative_to(ROOT))
            if dest is not None
            else f"{run}/model.safetensors (not shipped)",
            "model_bytes": (dest or run / "model.safetensors").stat().st_size,
            "config": config.get("model"),
            "command": metrics.get("command"),
            "seed": metrics.get("seed"),
            "threads": metrics.get("threads"),
            "wall_time_s": metrics.get("wall_time_s"),
            "cpu_time_s": metrics.get("cpu_time_s"),
            "epochs_run": metrics.get("epochs_run"),
            "best_epoch": metrics.get("best_epoch"),
            "training_options": {k: v for k, v in config.items() if k not in ("model", "data_dir")},
            "test_accuracy": res["test"]["accuracy"],
            "val_accuracy": res["val"]["accuracy"],
            "test_per_speaker": res["test"]["per_speaker"],
            "test_confusion": res["test"]["confusion"],
            "evaluate_command": (
                f"grukit digits evaluate{' --stream' if name == 'stream' else ''} --split test"
                if dest is not None
                else f"grukit digits evaluate --checkpoint {run} --split test"
            ),
        }
        print(f"{name}: test {res['test']['accuracy']:.4f} val {res['val']['accuracy']:.4f}")
    out["selection"] = (
        "the shipped offline model is the bidirectional run with the best validation "
        "accuracy among those listed; test accuracy was not used to choose"
    )
    out["split"] = (
        "official: test = index 0-4 (300 files), val = index 5-9 (300), train = index 10-49 (2400)"
    )
    out["machine"] = _machine()
    _merge("official_split", out)


def streamcheck(args) -> None:
    """Stream every official test file through the shipped streaming model in ``--chunk-ms`` chunks and compare
    the final answer with the offline prediction of the same model on the whole file."""
    from grukit.tasks.digits import data as D
    from grukit.tasks.digits.evaluate import split_records
    from grukit.tasks.digits.predict import features_for, load_model
    from grukit.tasks.digits.stream import StreamingRecognizer

    torch.set_num_threads(args.threads)
    model = load_model(stream=True)
    recs = split_records(args.data_dir, "test")
    step = int(args.chunk_ms / 1000 * model.feature_spec.sample_rate)
    same, max_diff, correct, frames = 0, 0.0, 0, 0
    c0 = time.process_time()
    for r in recs:
        y = D.load_audio(r.path, model.feature_spec)
        rec = StreamingRecognizer(model)
        for i in range(0, len(y), step):
            rec.push(y[i : i + step])
        final = rec.finish()
        with torch.no_grad():
            offline = model(torch.from_numpy(features_for(model, y))[None])[0]
        max_diff = max(max_diff, float((offline - rec.logits).abs().max()))
        same += int(final.label == str(int(offline.argmax())))
        correct += int(final.label == str(r.digit))
        frames += rec.frames
    cpu = time.process_time() - c0
    _merge(
        "streaming_check",
        {
            "description": "every official test file streamed in chunks through the shipped streaming model "
            "(features, running normalization and GRU.step frame by frame) vs the same model "
            "offline on the whole file",
            "command": " ".join(["python", *sys.argv]),
            "files": len(recs),
            "chunk_ms": args.chunk_ms,
            "final_equals_offline": same,
            "max_abs_logit_difference": max_diff,
            "stream_accuracy": correct / len(recs),
            "frames": frames,
            "cpu_time_s": round(cpu, 2),
            "cpu_ms_per_frame": round(1000 * cpu / frames, 3),
            "real_time_factor": round(
                cpu / (frames * model.feature_spec.hop_length / model.feature_spec.sample_rate), 4
            ),
            "threads": args.threads,
            "machine": _machine(),
        },
    )
    print(
        f"final == offline on {same}/{len(recs)} files, max |logit diff| {max_diff:.2e}, "
        f"{1000 * cpu / frames:.3f} ms CPU per 10 ms frame"
    )


def _sequence_run(model, recs, noise: float, count: int, length: int, seed: int) -> dict:
    """``predict_sequence`` on ``count`` strings of ``length`` random files of ``recs`` joined by 0.2-0.5 s
    pauses of Gaussian noise of standard deviation ``noise``."""
    from grukit.tasks.digits import data as D
    from grukit.tasks.digits.predict import predict_sequence

    spec = model.feature_spec
    rng = np.random.default_rng(seed)
    right = count_right = digits_right = 0
    c0 = time.process_time()
    for _ in range(count):
        pick = [recs[i] for i in rng.choice(len(recs), length, replace=False)]
        parts = [noise * rng.standard_normal(int(rng.uniform(0.2, 0.5) * 8000))]
        for r in pick:
            parts += [
                D.load_audio(r.path, spec),
                noise * rng.standard_normal(int(rng.uniform(0.2, 0.5) * 8000)),
            ]
        got = "".join(
            s.label for s in predict_sequence(model, np.concatenate(parts).astype(np.float32))
        )
        want = "".join(str(r.digit) for r in pick)
        right += got == want
        count_right += len(got) == len(want)
        digits_right += sum(a == b for a, b in zip(got, want)) if len(got) == len(want) else 0
    return {
        "noise_std": noise,
        "strings_exactly_right": right,
        "fraction_exactly_right": right / count,
        "segment_count_right": count_right,
        "digit_accuracy_where_count_right": digits_right / max(1, count_right * length),
        "cpu_s": round(time.process_time() - c0, 1),
    }


def sequences(args) -> None:
    """``predict --sequence`` on synthetic digit strings: ``--count`` strings of ``--length`` random files of
    the official ``--split`` joined by pauses of 0.2-0.5 s of Gaussian noise (std: each of ``--noise``), with
    the shipped offline model. With ``--split test`` (the default) writes the section
    ``sequence_noise_curve`` (the older ``sequences`` entry, measured with the percentile noise floor at one
    noise level, is kept as it was); with ``--split val`` or ``train`` (for tuning the segmentation without
    looking at test) it only prints."""
    from grukit.tasks.digits.evaluate import split_records
    from grukit.tasks.digits.predict import load_model

    torch.set_num_threads(args.threads)
    model = load_model()
    recs = split_records(args.data_dir, args.split)
    iso_right = sum(
        int(model.config.labels[int(classify_file_probs(model, r.path).argmax())] == str(r.digit))
        for r in recs
    )
    curve = [
        _sequence_run(model, recs, noise, args.count, args.length, args.seed)
        for noise in args.noise
    ]
    for c in curve:
        print(
            f"noise std {c['noise_std']:g}: {c['strings_exactly_right']}/{args.count} strings right, "
            f"segment count right {c['segment_count_right']}/{args.count}"
        )
    if args.split != "test":
        print(f"(--split {args.split}: not recorded)")
        return
    _merge(
        "sequence_noise_curve",
        {
            "description": "grukit digits predict --sequence (shipped offline model) on strings of random "
            "official test files joined by 0.2-0.5 s pauses of Gaussian noise, one run per noise level "
            "(the same strings at each level). Segmentation: noise floor = the 1 dB histogram peak of the "
            "quieter half of the frame levels; speech = 6 dB above it, grown over frames 3 dB above it; "
            "then each part grown (at most 0.5 s, never past the middle of the pause) over frames that are "
            "not white noise (spectral flatness, median of 5 frames, below 0.45; skipped when the pauses "
            "themselves are coloured); each part classified as "
            "cut, no padding. Thresholds chosen on strings drawn from the val split (--split val), not test",
            "split": args.split,
            "command": " ".join(["python", *sys.argv]),
            "seed": args.seed,
            "strings": args.count,
            "digits_per_string": args.length,
            "isolated_test_accuracy": iso_right / len(recs),
            "ceiling_note": "with every digit classified from its own file, a 4-digit string is right with "
            "probability about isolated_test_accuracy ** 4",
            "target": "at least 90% of strings exactly right at each noise level",
            "curve": curve,
            "cpu": _cpu(),
            "machine": _machine(),
        },
    )


def classify_file_probs(model, path):
    from grukit.tasks.digits.predict import classify_file

    return classify_file(model, path)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("loso")
    a.add_argument("--data-dir", default=None)
    a.add_argument("--runs", default="runs")
    a.add_argument("--epochs", type=int, default=8)
    a.add_argument("--hidden-size", type=int, default=32)
    a.add_argument("--num-layers", type=int, default=1)
    a.add_argument("--dropout", type=float, default=0.0)
    a.add_argument("--pooling", default="mean")
    a.add_argument("--normalization", default="utterance", choices=["utterance", "running"])
    a.add_argument("--unidirectional", action="store_true")
    a.add_argument(
        "--section", default="leave_one_speaker_out", help="Key of the results in digits.json."
    )
    a.add_argument("--mask-bands", type=int, default=6)
    a.add_argument("--mask-frames", type=int, default=6)
    a.add_argument("--stretch", type=float, default=0.2)
    a.add_argument("--shift", type=int, default=2)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("official")
    b.add_argument("offline_run")
    b.add_argument("stream_run")
    b.add_argument("--data-dir", default=None)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--no-copy", action="store_true", help="Evaluate the shipped files as they are.")
    b.add_argument(
        "--alternative",
        action="append",
        default=[],
        help="Another run folder to evaluate and record (not shipped); repeatable.",
    )
    c = sub.add_parser("streamcheck")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--chunk-ms", type=float, default=100.0)
    c.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("sequences")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--count", type=int, default=100)
    e.add_argument("--length", type=int, default=4)
    e.add_argument("--noise", type=float, nargs="+", default=[2e-4, 1e-3, 3e-3])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="Official split the strings are drawn from; only test is recorded.",
    )
    args = p.parse_args()
    {"loso": loso, "official": official, "streamcheck": streamcheck, "sequences": sequences}[
        args.cmd
    ](args)


if __name__ == "__main__":
    main()
