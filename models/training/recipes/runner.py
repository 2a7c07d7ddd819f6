"""Running a recipe's stages in order, resumably (the command line is ``models.training.recipe``).

A stage is done when ``OUT/.done/<stage>.json`` exists and records the same stage (a record of another stage, e.g.
from a smoke run into the same folder, is an error, not a skip). Done stages are skipped; a training stage that
left a last.pt without a record continues from it (``--resume``); any other stage runs again from its start.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from models.training.recipes.stages import Average, Grow, Recipe, Stage, Synth, Train, flag_values


class RecipeError(Exception):
    """A recipe that cannot run (missing data, a stage that failed); the message is one line."""


@dataclass(frozen=True)
class RunOptions:
    """Where the recipe writes and how its stages run (nothing here changes the weights a stage makes)."""

    out: Path
    data: Path
    device: str = "auto"
    workers: int = 1  # data-loader processes per training process
    threads: int | None = None  # torch CPU threads per training process
    synth_workers: int = 1  # processes drawing synthetic images (the same images for any number)
    progress: bool = False
    pretrained: str | None = None  # ImageNet backbone weights for stages that start from them ("none": scratch)
    nproc: int = 1  # training processes per node (torchrun when nproc * nnodes > 1)
    nnodes: int = 1
    node_rank: int = 0
    master: str | None = None  # HOST:PORT of node 0 (several nodes)


def product(recipe: Recipe, ref: str, opts: RunOptions) -> Path:
    """The file a stage reference (``"s"``, ``"h:last"``) names."""
    base, _, which = ref.partition(":")
    stage = recipe.stages[recipe.index(base)]
    if isinstance(stage, Train):
        return opts.out / base / ("last.pt" if which == "last" else "best.pt")
    if isinstance(stage, Synth):
        return opts.data / base
    return opts.out / f"{base}.pt"


def train_argv(recipe: Recipe, stage: Train, opts: RunOptions, resume: bool = False) -> list[str]:
    """``models.training.train`` arguments of a training stage: its own, then where it writes and runs."""
    argv = [a.replace("{data}", str(opts.data)) for a in stage.args]
    argv += ["--out", str(opts.out / stage.name), "--device", opts.device, "--workers", str(opts.workers)]
    if opts.threads is not None:
        argv += ["--threads", str(opts.threads)]
    if not opts.progress:
        argv.append("--no-progress")
    if stage.init:
        argv += ["--init", str(product(recipe, stage.init, opts))]
    if stage.pretrained and opts.pretrained and opts.pretrained != "none":
        argv += ["--pretrained", opts.pretrained]
    if resume:
        argv += ["--resume", str(opts.out / stage.name / "last.pt")]
    return argv


def launcher(opts: RunOptions) -> list[str]:
    """The torchrun prefix for training stages, [] when they run in this process."""
    if opts.nproc * opts.nnodes <= 1:
        return []
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={opts.nproc}"]
    if opts.nnodes > 1:
        host, _, port = (opts.master or "").rpartition(":")
        cmd += [f"--nnodes={opts.nnodes}", f"--node_rank={opts.node_rank}", f"--master_addr={host}",
                f"--master_port={port}"]
    return cmd + ["-m", "models.training.train"]


def command_line(recipe: Recipe, stage: Stage, opts: RunOptions) -> str:
    """The stage as the one command a user could type instead."""
    if isinstance(stage, Synth):
        return (f"qem synth --out {opts.data / stage.name} --num-images {stage.num_images} --seed {stage.seed} "
                f"--split {stage.split} --size {stage.size}")
    if isinstance(stage, Train):
        prefix = launcher(opts)
        shown = " ".join(["torchrun", *prefix[3:-2]]) + " -m models.training.train" if prefix else "qem train"
        return f"{shown} {' '.join(train_argv(recipe, stage, opts))}"
    if isinstance(stage, Average):
        inputs = " ".join(str(product(recipe, r, opts)) for r in stage.inputs)
        weights = f" --weights {' '.join(map(str, stage.weights))}" if stage.weights else ""
        return f"qem average {inputs}{weights} --out {opts.out / stage.name}.pt"
    return (f"qem grow {product(recipe, stage.input, opts)} --encoder-blocks {stage.encoder_blocks} "
            f"--kpt-blocks {stage.kpt_blocks} --out {opts.out / stage.name}.pt")


def check_inputs(recipe: Recipe, opts: RunOptions) -> None:
    """Every data folder or file a training stage reads exists or is drawn by an earlier stage, and stages that
    start from ImageNet weights have them; else one ``RecipeError`` line, before anything runs."""
    drawn = {(opts.data / s.name).resolve() for s in recipe.stages if isinstance(s, Synth)}
    for stage in recipe.stages:
        if not isinstance(stage, Train):
            continue
        for arg in stage.args:
            if "{data}" not in arg:
                continue
            path = Path(arg.replace("{data}", str(opts.data))).resolve()
            if not any(path == d or d in path.parents for d in drawn) and not path.exists():
                hint = f": {recipe.data_help}" if recipe.data_help else ""
                raise RecipeError(f"recipe {recipe.name}: data not found: {path}; check --data (now {opts.data}){hint}")
        if stage.pretrained and opts.pretrained is None:
            weights = ("an imported DEKR checkpoint (qem import dekr)" if any("dekr" in a for a in stage.args)
                       else "ImageNet weights")
            raise RecipeError(f"recipe {recipe.name}: stage {stage.name} starts from {weights}: pass "
                              f"--pretrained FILE (or --pretrained none to train from scratch)")
        if stage.pretrained and opts.pretrained != "none" and not Path(opts.pretrained).is_file():
            raise RecipeError(f"recipe {recipe.name}: --pretrained {opts.pretrained}: file not found")


def _record(opts: RunOptions, stage: Stage) -> Path:
    return opts.out / ".done" / f"{stage.name}.json"


def _fingerprint(stage: Stage) -> dict:
    return json.loads(json.dumps({"kind": type(stage).__name__, **asdict(stage)}))


def is_done(opts: RunOptions, stage: Stage) -> bool:
    path = _record(opts, stage)
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text()).get("stage")
    except (OSError, ValueError, AttributeError):
        saved = None
    if saved != _fingerprint(stage):
        raise RecipeError(f"{path}: stage {stage.name} in {opts.out} was made by another recipe or scale; "
                          f"use a new --out, or --from-stage {stage.name} to redo it")
    return True


def forget(opts: RunOptions, stage: Stage) -> None:
    """Remove a stage's record and what it wrote in OUT (``--from-stage``); data folders are redrawn in place."""
    _record(opts, stage).unlink(missing_ok=True)
    if isinstance(stage, Train):
        shutil.rmtree(opts.out / stage.name, ignore_errors=True)
    elif isinstance(stage, (Average, Grow)):
        (opts.out / f"{stage.name}.pt").unlink(missing_ok=True)


def run_stage(recipe: Recipe, stage: Stage, opts: RunOptions) -> str:
    """Run one stage unless done; returns what happened ("done", "resumed", "ran")."""
    if is_done(opts, stage):
        return "done"
    start, action = time.monotonic(), "ran"
    if isinstance(stage, Synth):
        from models.data.synth import PRESETS, write_split

        cfg = replace(PRESETS["easy"], width=stage.size, height=stage.size)
        write_split(opts.data / stage.name, stage.split, stage.num_images, stage.seed, cfg, progress=opts.progress,
                    workers=opts.synth_workers)
    elif isinstance(stage, Train):
        resume = (opts.out / stage.name / "last.pt").is_file()
        action = "resumed" if resume else "ran"
        _train(train_argv(recipe, stage, opts, resume), opts)
        if opts.node_rank > 0:
            return action  # checkpoints are written by node 0
        _check_finished(stage, opts)
    elif isinstance(stage, Average):
        from models.training.average import write_average

        write_average([product(recipe, r, opts) for r in stage.inputs], opts.out / f"{stage.name}.pt", stage.weights)
    else:
        from models.training.grow import write_grown

        write_grown(product(recipe, stage.input, opts), opts.out / f"{stage.name}.pt", stage.encoder_blocks,
                    stage.kpt_blocks)
    record = _record(opts, stage)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"stage": _fingerprint(stage), "seconds": round(time.monotonic() - start, 1)}))
    return action


def _train(argv: list[str], opts: RunOptions) -> None:
    prefix = launcher(opts)
    if prefix:
        code = subprocess.call(prefix + argv)
        if code != 0:
            raise RecipeError(f"torchrun exited with status {code}")
        return
    from models.training.args import build_args
    from models.training.train import TrainError, run

    try:
        run(build_args(argv))
    except TrainError as exc:
        raise RecipeError(str(exc)) from None


def _check_finished(stage: Train, opts: RunOptions) -> None:
    """The run reached the end of its schedule (a --time-limit stop did not) and wrote what later stages read."""
    from models.checkpoint import CheckpointError, read_checkpoint

    epochs = int((flag_values(stage.args, "--epochs") or ["140"])[0])
    try:
        done = int(read_checkpoint(opts.out / stage.name / "last.pt")["extra"].get("epoch", 0))
    except CheckpointError as exc:
        raise RecipeError(str(exc)) from None
    if done < epochs:
        raise RecipeError(f"stage {stage.name} stopped after epoch {done} of {epochs}; run the same command again "
                          f"to continue it")
    if not (opts.out / stage.name / "best.pt").is_file():
        raise RecipeError(f"stage {stage.name} wrote no best.pt (its validation never gave a number)")
