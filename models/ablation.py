"""The paper's claim on our data: does a quality-aware score (CIR) and the query encodings (KQE, PQE) raise both
AP and the rank correlation between a pose's score and its true OKS?

    python -m models.ablation --train /work/data/synth_train --val /work/data/synth_val \\
        --epochs 4 --input-size 192 --out runs/ablation --table RESULTS_ablation.md

Every row trains the ``tiny`` model from the same seed on the same images for the same number of epochs and
steps, then is evaluated on the same validation images (COCO keypoint AP with pycocotools; Spearman's rho
between pose score and the OKS against its best-matching ground truth):

=====================  ==========================================================
row                    model overrides
=====================  ==========================================================
centre-Gaussian        score_mode=center_gaussian, no KQE, no PQE (DEKR-style)
CIR                    score_mode=cir, no KQE, no PQE
CIR + KQE              score_mode=cir, KQE, no PQE
CIR + KQE + PQE        score_mode=cir, KQE, PQE (the paper's full model)
=====================  ==========================================================

Writes ``ablation.json`` in --out (every row's metrics, times and settings) and a Markdown table (--table).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROWS: tuple[tuple[str, list[str]], ...] = (
    ("centre-Gaussian score (baseline)", ["--score-mode", "center_gaussian", "--no-kqe", "--no-pqe"]),
    ("CIR", ["--score-mode", "cir", "--no-kqe", "--no-pqe"]),
    ("CIR + KQE", ["--score-mode", "cir", "--no-pqe"]),
    ("CIR + KQE + PQE", ["--score-mode", "cir"]),
)


def run_row(name: str, switches: list[str], args, index: int) -> dict:
    """Train one row and evaluate its last checkpoint on the validation set."""
    from models.evaluate import evaluate_checkpoint
    from models.train import build_args, run

    out = Path(args.out) / f"row{index}"
    train_argv = ["--config", args.config, "--synth", args.train, "--out", str(out), "--epochs", str(args.epochs),
                  "--batch-size", str(args.batch_size), "--input-size", str(args.input_size), "--lr", str(args.lr),
                  "--seed", str(args.seed), "--workers", str(args.workers), "--augment", args.augment,
                  "--eval-every", str(10**9),
                  "--no-progress", *switches]
    if args.max_steps is not None:
        train_argv += ["--max-steps", str(args.max_steps)]
    if args.threads is not None:
        train_argv += ["--threads", str(args.threads)]
    start = time.perf_counter()
    stats = run(build_args(train_argv))
    train_s = time.perf_counter() - start
    report, _ = evaluate_checkpoint(out / "last.pt", args.val, flip=args.flip, max_images=args.val_max,
                                    progress=False)
    return {"row": name, "switches": " ".join(switches), "AP": report.ap, "AP50": report.ap50,
            "AP75": report.ap75, "AR": report.ar, "spearman": report.spearman,
            "spearman_matched": report.spearman_matched, "val_images": report.num_images,
            "val_poses": report.num_poses, "train_seconds": round(train_s, 1),
            "train_images_per_s": stats.get("images_per_s"), "final_loss": stats.get("loss")}


def markdown_table(rows: list[dict], settings: dict) -> str:
    from models.evaluate import format_rho

    head = ("| row | AP | AP50 | AP75 | AR | Spearman(score, OKS) | Spearman matched | train time |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        rho, matched = (format_rho(r["spearman"]), format_rho(r.get("spearman_matched")))
        body += (f"| {r['row']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} | {rho} "
                 f"| {matched} | {r['train_seconds'] / 60:.1f} min |\n")
    steps = f" of at most {settings['max_steps']} steps" if settings.get("max_steps") else ""
    budget = (f"Budget per row: `{settings['config']}` at {settings['input_size']} px, {settings['epochs']} epochs"
              f"{steps} of batch {settings['batch_size']}, lr {settings['lr']} (DEKR-style drop scaled to the "
              f"epochs), {settings['augment']} augmentation, on {settings['train']} (same seed {settings['seed']}), "
              f"evaluated on {rows[0]['val_images'] if rows else 0} images of {settings['val']} "
              f"(flip test {'on' if settings['flip'] else 'off'}).")
    return head + body + "\n" + budget + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="training synth folder (the same for every row)")
    p.add_argument("--val", required=True, help="validation synth folder (never used in training)")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--table", default=None, help="also write the Markdown table here")
    p.add_argument("--config", default="tiny")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=None, help="steps per epoch cap")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=192)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--augment", choices=("dekr", "light", "off"), default="light")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--val-max", type=int, default=None, help="evaluate on at most this many val images")
    p.add_argument("--flip", action="store_true", help="flip test at evaluation")
    p.add_argument("--rows", type=int, nargs="*", default=None, help="run only these row numbers (0-3)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "ablation.json"
    rows = json.loads(done_file.read_text())["rows"] if done_file.is_file() else []
    done = {r["row"] for r in rows}
    for i, (name, switches) in enumerate(ROWS):
        if (args.rows is not None and i not in args.rows) or name in done:
            continue
        print(f"== {name}", flush=True)
        row = run_row(name, switches, args, i)
        rows.append(row)
        print(json.dumps(row), flush=True)
        rows.sort(key=lambda r: [n for n, _ in ROWS].index(r["row"]))
        done_file.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))
    table = markdown_table(rows, vars(args))
    print(table)
    if args.table:
        Path(args.table).write_text(table)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line for the person running it; the row results so far are saved
        sys.exit(f"error: {exc.__class__.__name__}: {exc}")
