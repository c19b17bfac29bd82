"""What each GRU variant buys on a small long-memory task: the adding problem with a fixed, small training set.

    python benchmarks/variants_quality.py                    # all variants, seed 0, ~1-2 min CPU each
    python benchmarks/variants_quality.py --variants gru layer_norm --epochs 5 --out /tmp/q.json

The adding problem (Hochreiter & Schmidhuber 1997): each step carries (value ~ U(0, 1), marker); exactly two
steps are marked, one in each half of the sequence, and the target is the sum of the two marked values.
Predicting the mean (1.0) scores MSE ≈ 1/6. Training uses a fixed set of --train sequences, so the
regularizers have something to prevent (overfitting); the test set is separate. Model: one recurrent layer
(hidden --hidden) and a linear read-out of the last output; Adam, gradient clipping 1.0, one thread.
Results go to the "quality_adding" entry of --out (benchmarks/results/variants.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import grukit

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "gru": {},
    "layer_norm": {"layer_norm": True},
    "recurrent_dropout_0.25": {"recurrent_dropout": 0.25},
    "zoneout_0.1": {"zoneout": 0.1},
    "dropconnect_0.25": {"dropconnect": 0.25},
    "mingru": None,
}


def adding_problem(n: int, T: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x (T, n, 2), y (n,): values U(0, 1) and two markers, one in each half; y = sum of marked values."""
    values = rng.uniform(0.0, 1.0, size=(T, n))
    marks = np.zeros((T, n))
    first, second = rng.integers(0, T // 2, size=n), rng.integers(T // 2, T, size=n)
    marks[first, np.arange(n)] = 1.0
    marks[second, np.arange(n)] = 1.0
    x = np.stack([values, marks], axis=-1)
    y = (values * marks).sum(0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


class Model(nn.Module):
    def __init__(self, variant: str, hidden: int):
        super().__init__()
        opts = VARIANTS[variant]
        self.rnn = grukit.MinGRU(2, hidden) if opts is None else grukit.GRU(2, hidden, **opts)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[-1]).squeeze(-1)


def run(variant: str, seed: int, args) -> dict:
    rng = np.random.default_rng(seed)
    x_tr, y_tr = adding_problem(args.train, args.T, rng)
    x_te, y_te = adding_problem(args.test, args.T, rng)
    torch.manual_seed(seed)
    model = Model(variant, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    c0, w0 = time.process_time(), time.perf_counter()
    curve = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(args.train)
        for i in range(0, args.train, args.batch):
            idx = perm[i : i + args.batch]
            loss = nn.functional.mse_loss(model(x_tr[:, idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        if (epoch + 1) % max(1, args.epochs // 5) == 0 or epoch + 1 == args.epochs:
            model.eval()
            with torch.no_grad():
                curve.append(
                    {
                        "epoch": epoch + 1,
                        "test_mse": round(float(nn.functional.mse_loss(model(x_te), y_te)), 5),
                    }
                )
    model.eval()
    with torch.no_grad():
        train_mse = float(nn.functional.mse_loss(model(x_tr), y_tr))
        test_mse = float(nn.functional.mse_loss(model(x_te), y_te))
    res = {
        "seed": seed,
        "train_mse": round(train_mse, 5),
        "test_mse": round(test_mse, 5),
        "parameters": sum(p.numel() for p in model.parameters()),
        "curve": curve,
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
    }
    print(
        f"{variant:24s} seed {seed}: train {train_mse:.4f} test {test_mse:.4f} "
        f"({res['cpu_s']} s CPU, {res['wall_s']} s wall)",
        flush=True,
    )
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--T", type=int, default=60)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "variants.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    w0 = time.perf_counter()
    results = {v: [run(v, s, args) for s in args.seeds] for v in args.variants}
    summary = {
        v: {
            "test_mse_mean": round(float(np.mean([r["test_mse"] for r in rs])), 5),
            "train_mse_mean": round(float(np.mean([r["train_mse"] for r in rs])), 5),
        }
        for v, rs in results.items()
    }
    entry = {
        "command": "python "
        + " ".join(
            [os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:])
        ),
        "task": f"adding problem, T={args.T}, {args.train} fixed training sequences, {args.test} test sequences",
        "baseline_predict_mean_mse": round(1 / 6, 5),
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "variants")},
        "variants": {
            v: VARIANTS[v] if VARIANTS[v] is not None else "grukit.MinGRU (1 layer, mode='scan')"
            for v in args.variants
        },
        "summary": summary,
        "runs": results,
        "wall_time_s": round(time.perf_counter() - w0, 1),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores shared with ~4 other engineers' jobs "
            "(load average ~12-15); one torch thread"
        ),
        "torch": torch.__version__,
        "grukit_version": grukit.__version__,
    }
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["quality_adding"] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(args.out)
    return entry


if __name__ == "__main__":
    main()
