"""Run every stage of a training recipe in order: data, training runs, averages, growth, the head alone.

    qem train --recipe tiny_synth                         the bundled checkpoint from nothing, into runs/tiny_synth
    qem train --recipe tiny_synth --plan                  its stages as commands, with the times they took
    qem train --recipe tiny_synth --smoke --out /tmp/s    every stage for 2 steps on a few 64 px images
    qem train --recipe tiny_synth --from-stage x          redo stage x and all after it
    qem train --recipe coco_hrnet_w32 --data coco --pretrained hrnetv2_w32_imagenet_pretrained.pth
    (several nodes: the same command on each, with --nnodes N --node-rank K --master HOST:PORT)

Recipes (``models/training/recipes/``): tiny_synth (measured: the stages that made models/weights/tiny_synth.pt),
coco_hrnet_w32 and coco_realtime (NOT YET RUN; --plan shows their estimated wall time on 8 GPUs).

Resumable: a finished stage is recorded in OUT/.done/ and skipped by the next call; an interrupted training stage
continues from its last.pt. Before anything runs, every data folder a stage reads must exist or be drawn by an
earlier stage. The result is OUT/final.pt, the last stage's product with the checkpoint meta
{"recipe": NAME, "commit": the code's git commit, "data": "synthetic" or "coco"}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.argtypes import OneLineParser
from models.training.recipes import RECIPES, get_recipe
from models.training.recipes.runner import RecipeError, RunOptions, check_inputs, command_line, forget, is_done, \
    run_stage
from models.training.recipes.stages import Recipe, estimated_hours, measured_minutes


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="qem train --recipe", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help=f"one of {', '.join(RECIPES)}")
    p.add_argument("--out", help="folder of every stage's output (default: runs/NAME, runs/NAME-smoke with --smoke)")
    p.add_argument("--data", help="data folder (default: OUT/data for synthetic recipes, coco for COCO ones)")
    p.add_argument("--from-stage", metavar="S", help="run stage S and every later one again")
    p.add_argument("--to-stage", metavar="S", help="stop after stage S")
    p.add_argument("--plan", action="store_true", help="print the stages, their commands and times; run nothing")
    p.add_argument("--smoke", action="store_true",
                   help="the same stages for 2 steps on a few 64 px images (a check that the recipe runs)")
    p.add_argument("--device", default="auto", help="training device: auto, cpu or cuda")
    p.add_argument("--workers", type=int, help="data-loader processes per training process (default: the recipe's)")
    p.add_argument("--threads", type=int, help="torch CPU threads per training process")
    p.add_argument("--synth-workers", type=int, default=1, help="processes drawing the synthetic images")
    p.add_argument("--pretrained", help="ImageNet backbone weights for the COCO HRNet recipe ('none': from scratch)")
    p.add_argument("--nproc-per-node", type=int, help="training processes per node (default: the recipe's)")
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master", metavar="HOST:PORT", help="node 0's address, for several nodes")
    p.add_argument("--progress", action="store_true", help="progress bars")
    return p


def options(args, recipe: Recipe) -> RunOptions:
    out = Path(args.out or f"runs/{recipe.name}{'-smoke' if args.smoke else ''}")
    data = Path(args.data or recipe.default_data.format(out=out))
    if args.nnodes > 1 and not args.master:
        raise RecipeError("--nnodes > 1 needs --master HOST:PORT (node 0's address)")
    workers = recipe.workers if args.workers is None else args.workers
    return RunOptions(out=out, data=data, device=args.device, workers=workers, threads=args.threads,
                      synth_workers=args.synth_workers, progress=args.progress, pretrained=args.pretrained,
                      nproc=args.nproc_per_node or recipe.processes, nnodes=args.nnodes, node_rank=args.node_rank,
                      master=args.master)


def stage_range(recipe: Recipe, args) -> tuple[int, int]:
    names = [s.name for s in recipe.stages]
    for flag, name in (("--from-stage", args.from_stage), ("--to-stage", args.to_stage)):
        if name is not None and name not in names:
            raise RecipeError(f"{flag} {name}: recipe {recipe.name} has no such stage ({', '.join(names)})")
    first = names.index(args.from_stage) if args.from_stage else 0
    last = names.index(args.to_stage) if args.to_stage else len(names) - 1
    if last < first:
        raise RecipeError(f"--to-stage {args.to_stage} comes before --from-stage {args.from_stage}")
    return first, last


def plan(recipe: Recipe, opts: RunOptions) -> str:
    """The stages as commands, then what the whole run costs (measured, or estimated when not yet run)."""
    measured = {name: m for m in recipe.measured for name in m.stages}
    lines = [f"recipe {recipe.name}: {recipe.description}", f"status: {recipe.status}"]
    for i, stage in enumerate(recipe.stages, 1):
        m = measured.get(stage.name)
        first_of_group = m is not None and m.stages[0] == stage.name
        took = f"   # {m.minutes:g} min on {m.machine} ({'+'.join(m.stages)})" if first_of_group else ""
        note = f"   # {stage.note}" if getattr(stage, "note", "") else ""
        lines.append(f"[{i:>2}] {stage.name}: {command_line(recipe, stage, opts)}{took}{note}")
    minutes = measured_minutes(recipe)
    if minutes:
        lines.append(f"measured: {minutes.get('cpu', 0) / 60:.1f} CPU hours (a 2-core x86_64 CPU) and "
                     f"{minutes.get('gpu', 0):.1f} GPU minutes (one H200)")
    hours = estimated_hours(recipe)
    if hours is not None:
        e = recipe.estimate
        lines.append(f"estimate, NOT YET RUN: {hours:.1f} hours on {e.gpus} GPUs if the GPUs set the pace ({e.source}, "
                     f"{e.images_per_epoch} images per epoch)")
    lines += [f"note: {n}" for n in recipe.notes]
    return "\n".join(lines)


def run(recipe: Recipe, opts: RunOptions, first: int = 0, last: int | None = None, log=print) -> Path | None:
    """Run stages ``first..last`` (all by default); returns OUT/final.pt when the last stage is done."""
    last = len(recipe.stages) - 1 if last is None else last
    check_inputs(recipe, opts)
    for stage in recipe.stages[:first]:
        if not is_done(opts, stage):
            raise RecipeError(f"stage {stage.name} has not run in {opts.out}; run the recipe without --from-stage")
    if first > 0:
        for stage in recipe.stages[first:]:
            forget(opts, stage)
    changed = False  # once a stage ran, every later one runs again: its inputs changed
    for i in range(first, last + 1):
        stage = recipe.stages[i]
        log(f"[{i + 1}/{len(recipe.stages)}] {stage.name}: {command_line(recipe, stage, opts)}")
        try:
            if changed and is_done(opts, stage):
                forget(opts, stage)
            action = run_stage(recipe, stage, opts)
            changed = changed or action != "done"
        except KeyboardInterrupt:
            raise RecipeError(f"interrupted in stage {stage.name}; the same command continues from there") from None
        except RecipeError as exc:
            raise RecipeError(f"stage {stage.name}: {exc}") from None
        log(f"[{i + 1}/{len(recipe.stages)}] {stage.name}: {'done before, skipped' if action == 'done' else action}")
    if last < len(recipe.stages) - 1 or opts.node_rank > 0:
        return None
    return write_final(recipe, opts)


def write_final(recipe: Recipe, opts: RunOptions) -> Path:
    from models.checkpoint import rewrite_meta
    from models.provenance import git_commit
    from models.training.recipes.runner import product

    meta = {"recipe": recipe.name, "commit": git_commit(), "data": recipe.data}
    if recipe.scale != "full":
        meta["scale"] = recipe.scale
    return rewrite_meta(product(recipe, recipe.stages[-1].name, opts), meta, out=opts.out / "final.pt")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        recipe = get_recipe(args.recipe, args.smoke)
    except KeyError as exc:
        sys.exit(f"error: {exc.args[0]}")
    try:
        opts = options(args, recipe)
        if args.plan:
            print(plan(recipe, opts))
            return 0
        first, last = stage_range(recipe, args)
        final = run(recipe, opts, first, last, log=lambda line: print(line, flush=True))
    except RecipeError as exc:
        sys.exit(f"error: {exc}")
    done = f"wrote {final}" if final else f"stopped after stage {recipe.stages[last].name}"
    print(f"recipe {recipe.name}: {done}")
    return 0
