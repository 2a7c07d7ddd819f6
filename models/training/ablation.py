"""The paper's claim on our data: does a quality-aware score (CIR) and the query encodings (KQE, PQE) raise both
AP and the rank correlation between a pose's score and its true OKS?

    qem ablation --train /work/data/synth_train --val /work/data/synth_val \\
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

Each row is evaluated twice: ranked by its own score (the PQE's; the dense score at the peak in rows without PQE)
and by the mean of its keypoint scores (``models.modeling.qem.pose_scores``). Writes ``ablation.json`` in --out (every
row's metrics, times and settings) and a Markdown table (--table); ``--evaluate-only`` re-evaluates the rows already
trained there (their last.pt, on this call's --val with its --flip and --val-max) without training.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from models.argtypes import OneLineParser
from models.evaluation.evaluate import evaluate_checkpoint, format_rho
from models.training.train import build_args, run

ROWS: tuple[tuple[str, list[str]], ...] = (
    ("centre-Gaussian score (baseline)", ["--score-mode", "center_gaussian", "--no-kqe", "--no-pqe"]),
    ("CIR", ["--score-mode", "cir", "--no-kqe", "--no-pqe"]),
    ("CIR + KQE", ["--score-mode", "cir", "--no-pqe"]),
    ("CIR + KQE + PQE", ["--score-mode", "cir"]),
)


def train_row(switches: list[str], args, index: int) -> dict:
    """Train one row into ``--out/row<index>``; its time and throughput."""
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
    return {"train_seconds": round(time.perf_counter() - start, 1), "train_images_per_s": stats.get("images_per_s"),
            "final_loss": stats.get("loss")}


def evaluate_row(args, index: int) -> dict:
    """Metrics of row ``index``'s last checkpoint on the validation set: with the row's own score (``pqe``: the
    PQE's, or the dense score where the row has no PQE) and ranked by the mean keypoint score (``kpm_`` keys)."""
    metrics: dict = {}
    for pose_score, prefix in (("pqe", ""), ("keypoint_mean", "kpm_")):
        report, _ = evaluate_checkpoint(Path(args.out) / f"row{index}" / "last.pt", args.val, flip=args.flip,
                                        max_images=args.val_max, progress=False, pose_score=pose_score)
        metrics.update({f"{prefix}AP": report.ap, f"{prefix}spearman": report.spearman,
                        f"{prefix}spearman_matched": report.spearman_matched})
        if not prefix:
            metrics.update({"AP50": report.ap50, "AP75": report.ap75, "AR": report.ar,
                            "val_images": report.num_images, "val_poses": report.num_poses})
    return metrics


def markdown_table(rows: list[dict], settings: dict) -> str:
    head = ("| row | AP | AP50 | AP75 | AR | Spearman(score, OKS) | Spearman matched | train time "
            "| AP, mean keypoint score | Spearman matched, mean keypoint score |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        rho, matched = (format_rho(r["spearman"]), format_rho(r.get("spearman_matched")))
        kpm = (f"{r['kpm_AP']:.3f} | {format_rho(r.get('kpm_spearman_matched'))}" if "kpm_AP" in r else "— | —")
        body += (f"| {r['row']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['AP75']:.3f} | {r['AR']:.3f} | {rho} "
                 f"| {matched} | {r['train_seconds'] / 60:.1f} min | {kpm} |\n")
    steps = f" of at most {settings['max_steps']} steps" if settings.get("max_steps") else ""
    budget = (f"Budget per row: `{settings['config']}` at {settings['input_size']} px, {settings['epochs']} epochs"
              f"{steps} of batch {settings['batch_size']}, lr {settings['lr']} (DEKR-style drop scaled to the "
              f"epochs), {settings['augment']} augmentation, on {settings['train']} (same seed {settings['seed']}), "
              f"evaluated on {rows[0]['val_images'] if rows else 0} images of {settings['val']} "
              f"(flip test {'on' if settings['flip'] else 'off'}).")
    return head + body + "\n" + budget + "\n"


def main(argv=None) -> None:
    p = OneLineParser(prog="qem ablation", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", help="training synth folder (the same for every row)")
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
    p.add_argument("--evaluate-only", action="store_true",
                   help="re-evaluate the rows already trained in --out (their last.pt) and rewrite the table")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "ablation.json"
    saved = json.loads(done_file.read_text()) if done_file.is_file() else {"settings": {}, "rows": []}
    if args.evaluate_only and not saved["rows"]:
        raise SystemExit(f"error: {done_file} lists no trained rows; run without --evaluate-only first")
    if not args.evaluate_only and args.train is None:
        p.error("--train is required (except with --evaluate-only)")
    evaluation = {"val": args.val, "flip": args.flip, "val_max": args.val_max}
    settings = {**saved["settings"], **evaluation} if args.evaluate_only else vars(args)
    names = [n for n, _ in ROWS]
    by_name = {r["row"]: r for r in saved["rows"]}
    for i, (name, switches) in enumerate(ROWS):
        if (args.rows is not None and i not in args.rows) or args.evaluate_only != (name in by_name):
            continue
        print(f"== {name}", flush=True)
        row = by_name.get(name) or {"row": name, "switches": " ".join(switches), **train_row(switches, args, i)}
        row.update(evaluate_row(args, i))
        by_name[name] = row
        print(json.dumps(row), flush=True)
        rows = sorted(by_name.values(), key=lambda r: names.index(r["row"]))
        done_file.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    table = markdown_table(sorted(by_name.values(), key=lambda r: names.index(r["row"])), settings)
    print(table)
    if args.table:
        Path(args.table).write_text(table)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line for the person running it; the row results so far are saved
        sys.exit(f"error: {exc.__class__.__name__}: {exc}")
