"""The tiny_synth recipe is the bundled checkpoint's history: every training run, soup and growth step RESULTS.md
lists under "Every stage's command", in the same order, parsed by the same argument parser, with the same
settings (where a run trains, on how many threads and loader processes aside)."""
import re
import shlex

from models.training.args import build_args, lr_milestones
from models.training.recipes import RECIPES
from models.training.recipes.runner import RunOptions, train_argv
from models.training.recipes.stages import Average, Grow, Train
from tests.cli import ROOT

# Runs cut short by a time limit, written as the part that ran (same weights): stage -> epochs that ran
CUT_SHORT = {"j": 6, "b2": 3}
# RESULTS.md's folders -> the recipe's data folders (x and y read the data as .ci/gpu-train draws it)
DATA = {"data/synth_train": "synth_train", "data/synth_val": "synth_val",
        "data/synth_dev": "synth_dev", "data/synth_train12k": "synth_train12k"}
SAME = ("config", "input_size", "batch_size", "lr", "augment", "eval_every", "val_images_max", "pose_score", "amp",
        "labelled_head", "train_only", "encoder_blocks", "kpt_blocks", "max_steps", "seed", "weight_decay")


def _history() -> list[list[str]]:
    """The commands of RESULTS.md's block "Every stage's command" (training history), shell variables expanded."""
    text = (ROOT / "RESULTS.md").read_text()
    block = text.split("<summary>Every stage's command</summary>", 1)[1].split("```", 2)[1]
    block = re.sub(r"\\\n\s*", " ", block)
    variables: dict[str, str] = {}

    def expand(s: str) -> str:
        s = re.sub(r"\$\{(\w+)/([^/}]*)/([^}]*)\}", lambda m: variables[m[1]].replace(m[2], m[3]), s)
        return re.sub(r"\$(\w+)", lambda m: variables[m[1]], s)

    commands = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        assignment = re.fullmatch(r'(\w+)="(.*)"', line)
        if assignment:
            variables[assignment[1]] = " ".join(expand(assignment[2]).split())
        elif line.startswith("qem "):
            commands.append(shlex.split(expand(line)))
    return commands


def _effective(args) -> tuple[int, list[int]]:
    drops = args.lr_drops if args.lr_drops is not None else lr_milestones(args.epochs)
    return args.epochs, list(drops)


def test_recipe_replays_every_bundled_stage_in_order(tmp_path):
    recipe = RECIPES["tiny_synth"]
    opts = RunOptions(out=tmp_path, data=tmp_path / "data")
    stages = [s for s in recipe.stages if not hasattr(s, "num_images")]
    history = [c for c in _history() if c[1] in ("train", "average", "grow")]
    assert [c[1] for c in history] == [type(s).__name__.lower() for s in stages]
    names: dict[str, str] = {}  # RESULTS.md folder name -> recipe stage name, as the history goes

    def ref(path: str) -> str:  # runs/s/best.pt -> "s", runs/g/last.pt -> "g:last", runs/mo.pt -> "mo"
        parts = path.split("/")
        if len(parts) == 2:
            return names[parts[1].removesuffix(".pt")]
        return names[parts[1]] + (":last" if parts[2] == "last.pt" else "")

    for command, stage in zip(history, stages):
        if isinstance(stage, Average):
            assert [ref(p) for p in command[2:command.index("--out")]] == list(stage.inputs)
            names[command[-1].removeprefix("runs/").removesuffix(".pt")] = stage.name
            continue
        if isinstance(stage, Grow):
            assert ref(command[2]) == stage.input
            grown = build_args(["--synth", "x", *command[3:command.index("--out")]])
            assert (grown.encoder_blocks, grown.kpt_blocks) == (stage.encoder_blocks, stage.kpt_blocks)
            names[command[-1].removeprefix("runs/").removesuffix(".pt")] = stage.name
            continue
        assert isinstance(stage, Train)
        theirs, ours = build_args(command[2:]), build_args(train_argv(recipe, stage, opts))
        for field in SAME:
            assert getattr(theirs, field) == getattr(ours, field), (stage.name, field)
        epochs, drops = _effective(theirs)
        if stage.name in CUT_SHORT:
            epochs, drops = CUT_SHORT[stage.name], [d for d in drops if d < CUT_SHORT[stage.name]]
        assert _effective(ours) == (epochs, drops), stage.name
        train_dir = "synth_train12k" if theirs.synth == "/tmp/qem-synth" else DATA[theirs.synth]
        val_dir = "synth_dev" if theirs.val_synth == "/tmp/qem-synth" else DATA[theirs.val_synth]
        assert (ours.synth, ours.val_synth) == (str(opts.data / train_dir), str(opts.data / val_dir)), stage.name
        if theirs.init is None:
            assert stage.init is None
        else:
            assert stage.init == ref(theirs.init), stage.name
        names[theirs.out.removeprefix("runs/")] = stage.name
    assert names["soup"] == recipe.stages[-1].name  # the bundled file is the recipe's last product


def test_recipe_draws_the_data_sets_results_names_with_their_seeds():
    recipe = RECIPES["tiny_synth"]
    drawn = {s.name: (s.num_images, s.seed, s.split) for s in recipe.stages if hasattr(s, "num_images")}
    found = {}
    for line in re.findall(r"^qem synth --out data/(\S+) (.*)$", (ROOT / "RESULTS.md").read_text(), re.M):
        name, rest = line
        if name in drawn:
            args = shlex.split(rest.split("  #")[0])
            split = args[args.index("--split") + 1] if "--split" in args else "train"
            found[name] = (int(args[args.index("--num-images") + 1]), int(args[args.index("--seed") + 1]), split)
    assert found == drawn
