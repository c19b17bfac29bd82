"""Record a translation run in benchmarks/results/translate.json and (optionally) ship its model.

    python benchmarks/translate_results.py RUN_DIR --command "grukit translate train ..." \\
        [--resume-command "..."] [--ship] [--beam 5] [--length-penalty 1.0] [--greedy] [--note TEXT]

Reads RUN_DIR/config.json and log.csv (the training history, with cumulative training wall time over all
resumed sessions). ``--ship`` stores RUN_DIR/model.safetensors (best on validation) as
``grukit/pretrained/translate-eng-fra.safetensors`` in float16, then scores *the shipped file* on the full
test split (beam search, plus greedy with ``--greedy``) and on the first 200 test pairs (the check that
tests/tasks/translate re-runs).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "translate.json"
CHECK_LIMIT = 200
EXAMPLES = [
    "I am cold.",
    "Where is the train station?",
    "She is reading a book in the garden.",
    "We have to leave before it starts raining.",
    "I don't know what you're talking about.",
    "Tom gave Mary a red apple.",
]


def _history(run: Path) -> list[dict]:
    with open(run / "log.csv") as f:
        return [
            {
                k: (
                    float(v)
                    if v not in ("", None) and k != "epoch" and k != "step"
                    else (int(v) if v else None)
                )
                for k, v in row.items()
            }
            for row in csv.DictReader(f)
        ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument(
        "--command", required=True, help="The exact training command that made the run."
    )
    ap.add_argument("--resume-command", default=None, help="The command that continues it.")
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument(
        "--greedy", action="store_true", help="Also score greedy decoding on the full test split."
    )
    ap.add_argument(
        "--train-cpu-s",
        type=float,
        default=None,
        help="CPU seconds the training process had used when RUN_DIR was snapshotted (ps -o time).",
    )
    ap.add_argument("--note", default=None)
    args = ap.parse_args(argv)

    import torch

    import grukit
    from grukit.tasks.translate import data as D
    from grukit.tasks.translate.evaluate import evaluate
    from grukit.tasks.translate.predict import SHIPPED, load_bundle, translate

    torch.set_num_threads(int(os.environ.get("GRUKIT_THREADS", "1")))
    run = args.run
    cfg = json.loads((run / "config.json").read_text())
    hist = _history(run)
    best = min((h for h in hist if h.get("val_loss") is not None), key=lambda h: h["val_loss"])
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data.update(
        {
            "task": "translate",
            "dataset": "eng_fra (Tatoeba via manythings.org/anki, 2017-09-29, 142,787 pairs)",
            "split": "SHA-1 of the lower-cased NFKC-normalized English sentence, mod 100: 0-89 train, 90-94 valid, "
            "95-99 test (all translations of a sentence in one split); test = 6,904 pairs, 4,837 distinct "
            "English sentences",
            "metric": "sacreBLEU corpus BLEU (13a, mixed case) and chrF on detokenized output; 'bleu'/'chrf': one line "
            "per test pair, its own French sentence as the single reference; '_short': pairs with <= 10 "
            "English words; 'bleu_multiref': each distinct English sentence once, all its translations as "
            "references",
            "goal": {"bleu": 30.0, "stretch_bleu": 35.0},
            "machine": args.note
            or (
                f"{platform.processor() or platform.machine()}, 2 CPU cores shared with ~5 "
                f"other jobs, torch {torch.__version__}, 1 torch thread"
            ),
        }
    )
    data["training"] = {
        "run": run.name,
        "command": args.command,
        "resume_command": args.resume_command,
        "seed": cfg.get("seed"),
        "threads": cfg.get("threads"),
        "config": cfg,
        "epochs_done": len(hist),
        "steps_done": hist[-1]["step"] if hist else 0,
        "full_passes_done": round(hist[-1]["step"] / cfg["batches_per_full_pass"], 2)
        if hist
        else 0,
        "train_wall_time_s": hist[-1]["time_s"] if hist else None,
        "train_cpu_time_s": args.train_cpu_s,
        "best_epoch": best["epoch"],
        "best_val_loss": round(best["val_loss"], 4),
        "best_val_token_acc": round(best["val_acc"], 4),
        "history": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in hist
        ],
    }
    if args.ship:
        model, header = grukit.load(run / "model.safetensors", return_header=True)
        grukit.save(model, SHIPPED, task="translate", dtype=torch.float16, extra=header["extra"])
        bundle = load_bundle(None)
        test = D.load_splits()["test"]
        results = {}
        for name, beam in ((f"beam{args.beam}", args.beam), ("greedy", 1))[
            : 2 if args.greedy else 1
        ]:
            t0, c0 = time.perf_counter(), time.process_time()
            res = evaluate(bundle, test, beam_size=beam, length_penalty=args.length_penalty)
            res["wall_time_s"] = round(time.perf_counter() - t0, 1)
            res["cpu_time_s"] = round(time.process_time() - c0, 1)
            res.pop("examples")
            results[name] = res
        check = evaluate(
            bundle, test[:CHECK_LIMIT], beam_size=args.beam, length_penalty=args.length_penalty
        )
        examples = translate(
            bundle, EXAMPLES, beam_size=args.beam, length_penalty=args.length_penalty
        )
        data["shipped"] = {
            "path": str(SHIPPED.relative_to(ROOT)),
            "bytes": SHIPPED.stat().st_size,
            "stored_dtype": "float16",
            "from_run_epoch": best["epoch"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "evaluate_command": f"grukit translate evaluate --beam {args.beam} --length-penalty {args.length_penalty}",
            "results": results,
            "check_first_200_test_pairs": {
                "limit": CHECK_LIMIT,
                "beam": args.beam,
                "length_penalty": args.length_penalty,
                **check["model"],
            },
            "examples": [{"en": e, "fr": f} for e, f in zip(EXAMPLES, examples)],
            "test_examples": evaluate(bundle, test[:40], beam_size=args.beam)["examples"],
            "goal_met": results[f"beam{args.beam}"]["model"]["bleu"] >= 30.0,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(
        json.dumps(
            {k: v for k, v in data.get("shipped", {}).items() if k in ("results", "examples")},
            indent=1,
            ensure_ascii=False,
        )[:4000]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
