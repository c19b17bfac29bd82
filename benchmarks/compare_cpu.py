"""Compare bench_gru.py results of two checkouts measured in the same session (the no-regression check).

    python benchmarks/compare_cpu.py --old old1.json old2.json --new new1.json new2.json \
        --out benchmarks/results/cpu_regression_round2.json

Each file is one ``bench_gru.py --threads 1 --repeats 3`` run; run the old and new checkouts alternately so
machine load hits both alike. For every 1-thread row (forward, forward+backward, autocast-bf16 training against
nn.GRU under the same autocast, the GRUCell and Streamer
streaming steps) it reports grukit's median process CPU time in each run, new/old per pair of runs and
new/old of the means, plus the same ratio normalised by the torch baseline of each run (nn.GRU /
nn.GRUCell), which cancels some of the machine's drift between runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
from pathlib import Path


def _rows(run: dict) -> dict[str, tuple[float, float]]:
    """{row name: (grukit CPU time, torch baseline CPU time)} of one bench_gru result, 1 thread only."""
    out: dict[str, tuple[float, float]] = {}
    for r in run["shapes"]:
        if r["threads"] != 1:
            continue
        s = r["shape"]
        name = f"({s['layers']},{s['batch']},{s['seq_len']},{s['input']},{s['hidden']})"
        for kind, key in (("fwd", "forward_cpu_ms"), ("fwd+bwd", "forward_backward_cpu_ms")):
            out[f"{name} {kind} ms"] = (r[key]["grukit"], r[key]["nn_gru"])
    for r in run.get("autocast_bf16") or []:  # training under CPU autocast to bfloat16 (issue 32)
        if r["threads"] != 1 or "forward_backward_cpu_ms" not in r:
            continue
        s, c = r["shape"], r["forward_backward_cpu_ms"]
        name = f"({s['layers']},{s['batch']},{s['seq_len']},{s['input']},{s['hidden']})"
        out[f"{name} autocast bf16 fwd+bwd ms"] = (c["grukit_autocast"], c["nn_gru_autocast"])
    for r in run["streaming"]:
        if r["threads"] != 1:
            continue
        u = r["cpu_us_per_step"]
        name = f"stream (B={r['batch']},H={r['hidden']})"
        out[f"{name} GRUCell µs"] = (u["grukit"], u["nn_grucell"])
        out[f"{name} Streamer µs"] = (u["grukit_streamer"], u["nn_grucell"])
    return out


def _record(data: dict, family: str | None) -> dict:
    """One run's record: the file itself (one run), or one family's of a ``{"families": {...}}`` file."""
    if "families" not in data:
        return data
    fams = data["families"]
    return fams[family] if family is not None else next(iter(fams.values()))


def compare(old: list[dict], new: list[dict]) -> list[dict]:
    """One entry per row present in every run: times, per-pair and mean ratios."""
    olds, news = [_rows(r) for r in old], [_rows(r) for r in new]
    names = [n for n in olds[0] if all(n in r for r in olds + news)]
    result = []
    for n in names:
        o = [r[n][0] for r in olds]
        w = [r[n][0] for r in news]
        o_norm = statistics.mean(r[n][0] / r[n][1] for r in olds)
        w_norm = statistics.mean(r[n][0] / r[n][1] for r in news)
        result.append(
            {
                "row": n,
                "old": [round(v, 2) for v in o],
                "new": [round(v, 2) for v in w],
                "new_over_old_per_pair": [round(b / a, 3) for a, b in zip(o, w)],
                "new_over_old_of_means": round(statistics.mean(w) / statistics.mean(o), 3),
                "new_over_old_baseline_normalised": round(w_norm / o_norm, 3),
            }
        )
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--old", nargs="+", required=True, help="bench_gru.py JSON files of the old checkout"
    )
    ap.add_argument(
        "--new", nargs="+", required=True, help="bench_gru.py JSON files of the new checkout"
    )
    ap.add_argument("--old-label", default="old main")
    ap.add_argument("--new-label", default="this change")
    ap.add_argument("--command", default="", help="how the runs were made (recorded)")
    ap.add_argument("--out", help="write the comparison here (JSON)")
    ap.add_argument(
        "--family",
        default=None,
        help="the CPU family's record of a cpu.json-style file (default: its only or first one)",
    )
    ap.add_argument("--note", default="", help="a caveat recorded with the comparison")
    args = ap.parse_args(argv)
    old = [_record(json.loads(Path(p).read_text()), args.family) for p in args.old]
    new = [_record(json.loads(Path(p).read_text()), args.family) for p in args.new]
    rows = compare(old, new)
    worst = max(rows, key=lambda r: r["new_over_old_of_means"])
    for r in rows:
        print(
            f"{r['row']:<34} new/old {r['new_over_old_of_means']:.3f} "
            f"(normalised {r['new_over_old_baseline_normalised']:.3f}; per pair {r['new_over_old_per_pair']})"
        )
    print(f"worst row: {worst['row']} {worst['new_over_old_of_means']:.3f}")
    if args.out:
        record = {
            "name": "cpu_regression",
            "about": __doc__.split("\n\n")[0],
            "command": args.command,
            "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "old": {"label": args.old_label, "runs": [r.get("date_utc") for r in old]},
            "new": {"label": args.new_label, "runs": [r.get("date_utc") for r in new]},
            "machine": new[0].get("machine", {}),
            "note": args.note,
            "units": "grukit's median process CPU time at 1 thread (ms per call; streaming µs per step)",
            "rows": rows,
            "worst_row": {
                "row": worst["row"],
                "new_over_old_of_means": worst["new_over_old_of_means"],
            },
        }
        Path(args.out).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
