"""What a recipe is made of: typed stages, the recipe that orders them, and the smoke scale that shrinks one.

A stage's product, which later stages name:
- ``Synth``: the folder ``DATA/<name>`` (``qem synth``); training stages refer to it as ``{data}/<name>``.
- ``Train``: ``OUT/<name>/best.pt`` (``"<name>"``) or ``OUT/<name>/last.pt`` (``"<name>:last"``).
- ``Average`` and ``Grow``: ``OUT/<name>.pt``.
The recipe's result is the product of its last stage, copied to ``OUT/final.pt`` with the recipe's ``meta``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

SMOKE_IMAGES = {"train": 6, "val": 4}
SMOKE_SIZE = 64


@dataclass(frozen=True)
class Synth:
    """Draw one split with ``qem synth --num-images N --seed S --split SPLIT --size SIZE`` into ``DATA/<name>``."""

    name: str
    num_images: int
    seed: int
    split: str = "train"
    size: int = 256


@dataclass(frozen=True)
class Train:
    """One ``models.training.train`` run. ``args`` are its arguments except ``--out``, ``--init``, ``--resume`` and
    where it runs (``--device``, ``--workers``, ``--threads``), which the runner adds; ``{data}`` in them is the
    recipe's data folder. ``init``: the product it starts from (``"s"``, ``"h:last"``, an Average or Grow)."""

    name: str
    args: tuple[str, ...]
    init: str | None = None
    pretrained: bool = False  # starts from ImageNet backbone weights (the runner's --pretrained FILE)
    note: str = ""


@dataclass(frozen=True)
class Average:
    """``qem average`` of products of earlier stages (a model soup)."""

    name: str
    inputs: tuple[str, ...]
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Grow:
    """``qem grow`` of an earlier product: more blocks, the same function."""

    name: str
    input: str
    encoder_blocks: int
    kpt_blocks: int


Stage = Synth | Train | Average | Grow


@dataclass(frozen=True)
class Measured:
    """Wall time measured for some stages when they made today's file: ``where`` is "cpu" or "gpu"."""

    stages: tuple[str, ...]
    minutes: float
    where: str
    machine: str


@dataclass(frozen=True)
class Estimate:
    """Expected wall time of a recipe not yet run, from a measured training throughput."""

    images_per_epoch: int
    images_per_s: float  # per GPU, measured
    gpus: int
    source: str


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    data: str  # the result's meta "data" label: "synthetic" or "coco"
    stages: tuple[Stage, ...]
    status: str  # how the recipe relates to a real run ("measured ..." or "not yet run")
    default_data: str = "{out}/data"  # the --data folder when none is given; {out} is --out
    data_help: str = ""  # what --data must hold (for the error line of a missing folder)
    processes: int = 1  # training processes per node; > 1 runs each Train stage under torchrun
    workers: int = 1  # data-loader processes per training process, unless the runner is given --workers
    measured: tuple[Measured, ...] = ()
    estimate: Estimate | None = None
    notes: tuple[str, ...] = field(default=())
    scale: str = "full"  # "smoke" for smoke(recipe): recorded in the result's meta

    def __post_init__(self) -> None:
        seen: dict[str, Stage] = {}
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"recipe {self.name}: two stages named {stage.name!r}")
            for ref in refs(stage):
                base, _, which = ref.partition(":")
                if base not in seen or isinstance(seen[base], Synth) or (which and which != "last"):
                    raise ValueError(f"recipe {self.name}: stage {stage.name!r} starts from {ref!r}, which is not "
                                     f"the product of an earlier stage")
                if which and not isinstance(seen[base], Train):
                    raise ValueError(f"recipe {self.name}: {ref!r}: only training stages have a last.pt")
            seen[stage.name] = stage

    def index(self, name: str) -> int:
        for i, stage in enumerate(self.stages):
            if stage.name == name:
                return i
        raise KeyError(name)


def refs(stage: Stage) -> tuple[str, ...]:
    """The products of earlier stages that ``stage`` reads (its data folders aside)."""
    if isinstance(stage, Train):
        return (stage.init,) if stage.init else ()
    if isinstance(stage, Average):
        return stage.inputs
    if isinstance(stage, Grow):
        return (stage.input,)
    return ()


def flag_values(args: tuple[str, ...], flag: str) -> list[str] | None:
    """The values after ``flag`` in ``args`` (up to the next ``--option``), or None when it is absent."""
    if flag not in args:
        return None
    i = args.index(flag) + 1
    out = []
    while i < len(args) and not args[i].startswith("--"):
        out.append(args[i])
        i += 1
    return out


def set_flag(args: tuple[str, ...], flag: str, *values: str) -> tuple[str, ...]:
    """``args`` with ``flag``'s values replaced by ``values`` (appended when absent)."""
    old = flag_values(args, flag)
    if old is None:
        return (*args, flag, *values)
    i = args.index(flag)
    return (*args[:i], flag, *values, *args[i + 1 + len(old):])


def smoke_train_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """A few steps of the same run: 1 epoch of 2 steps of 2 images at 64 px, validated on 2 images. The model
    switches, data, precision and learning rates stay, so every stage still does what it does in the full run."""
    epochs = 1
    drops = [d for d in (flag_values(args, "--lr-drops") or []) if int(d) < epochs]
    out = set_flag(args, "--epochs", str(epochs))
    out = set_flag(out, "--input-size", str(SMOKE_SIZE))
    out = set_flag(out, "--batch-size", "2")
    out = set_flag(out, "--max-steps", "2")
    out = set_flag(out, "--eval-every", "1")
    if flag_values(out, "--val-synth") is not None or flag_values(out, "--val-ann") is not None:
        out = set_flag(out, "--val-images-max", "2")
    return set_flag(out, "--lr-drops", *drops) if flag_values(args, "--lr-drops") is not None else out


def smoke(recipe: Recipe) -> Recipe:
    """The same stage graph at a size that runs in a minute or two on a CPU (tests, a check of a new recipe)."""
    stages = []
    for stage in recipe.stages:
        if isinstance(stage, Synth):
            stage = replace(stage, num_images=min(stage.num_images, SMOKE_IMAGES.get(stage.split, 4)),
                            size=SMOKE_SIZE)
        elif isinstance(stage, Train):
            stage = replace(stage, args=smoke_train_args(stage.args))
        stages.append(stage)
    return replace(recipe, stages=tuple(stages), status="smoke scale: a check of the stage graph, not a model",
                   measured=(), estimate=None, scale="smoke")


def measured_minutes(recipe: Recipe) -> dict[str, float]:
    """Measured minutes per place ("cpu", "gpu") of the run that made the recipe's result."""
    out: dict[str, float] = {}
    for m in recipe.measured:
        out[m.where] = out.get(m.where, 0.0) + m.minutes
    return out


def estimated_hours(recipe: Recipe) -> float | None:
    """GPU-bound wall time of every training stage at the recipe's measured throughput, in hours."""
    e = recipe.estimate
    if e is None:
        return None
    epochs = sum(int((flag_values(s.args, "--epochs") or ["140"])[0]) for s in recipe.stages if isinstance(s, Train))
    return epochs * e.images_per_epoch / (e.images_per_s * e.gpus) / 3600.0
