"""The bundled checkpoint, ``models/weights/tiny_synth.pt``: every stage RESULTS.md lists for it, in order.

Stage names follow RESULTS.md; its second round of b, c and d (the bf16 CPU stages after the GPU ones) is named
b2, c2, c2h (the labelled head trained alone) and d2 here. Two runs were cut short and are written as the part that
ran, which gives the same weights: stage j (8 epochs, x0.1 after 5 and 7) stopped in its 8th epoch, and its best.pt
came from the validation after epoch 6, so it is 6 epochs with one drop after 5; stage b2 (4 epochs, x0.1 after 2)
stopped after epoch 3, so it is 3 epochs. Stages x and y ran with the data ``.ci/gpu-train`` draws, which is the
12000-image set below (seed 1, split train) and the 300-image selection split (seed 7001, split val).

What cannot be replayed exactly: the 128 and 192 px stages (a to h) trained on the images an earlier version of the
generator drew from the same seeds (RESULTS.md, "Data"); this recipe draws today's images for them.
"""
from __future__ import annotations

from models.training.recipes.stages import Average, Grow, Measured, Recipe, Synth, Train

TRAIN, BENCH, DEV, TRAIN12K = "{data}/synth_train", "{data}/synth_val", "{data}/synth_dev", "{data}/synth_train12k"
CPU, H200 = "2-core x86_64 CPU", "one NVIDIA H200"


def _args(*extra: str, size: int, batch: int = 16, train: str = TRAIN, val: str = DEV, bench_val: bool = False):
    data = ("--synth", train, "--val-synth", val) + (("--val-images-max", "200") if bench_val else ())
    return ("--config", "tiny", *data, "--input-size", str(size), "--batch-size", str(batch), "--augment", "light",
            *extra)


def _early(size: int, *schedule: str, gpu: bool = False):
    """Stages a-j: validated on the first 200 images of the benchmark split, poses ranked by the PQE score."""
    extra = ("--eval-every", "2") if gpu else ()
    return _args(*schedule, *extra, size=size, batch=32 if gpu else 16, val=BENCH, bench_val=True)


def _late(size: int, *schedule: str, batch: int = 16, train: str = TRAIN, score: str = "keypoint_mean"):
    """Stages l on: validated on the 300-image selection split, poses ranked by the mean keypoint score."""
    return _args(*schedule, "--pose-score", score, size=size, batch=batch, train=train)


GROWN = ("--encoder-blocks", "2", "--kpt-blocks", "4")
BF16 = ("--amp", "bf16")

RECIPE = Recipe(
    name="tiny_synth",
    description="the bundled tiny network on synthetic people (models/weights/tiny_synth.pt)",
    data="synthetic",
    status="measured: the stages that made the bundled file (RESULTS.md), not rerun as a whole",
    stages=(
        Synth("synth_train", 6000, seed=1),
        Synth("synth_val", 500, seed=9001, split="val"),
        Synth("synth_dev", 300, seed=7001, split="val"),
        Synth("synth_train12k", 12000, seed=1),
        Train("a", _early(128, "--epochs", "5", "--lr", "2e-3", "--lr-drops", "3", "4")),
        Train("b", _early(128, "--epochs", "3", "--lr", "1e-3", "--lr-drops", "2"), init="a"),
        Train("c", _early(128, "--epochs", "4", "--lr", "1e-3", "--lr-drops", "3"), init="b"),
        Train("d", _early(128, "--epochs", "3", "--lr", "1e-3", "--lr-drops", "2"), init="c"),
        Train("e", _early(128, "--epochs", "3", "--lr", "1e-3", "--lr-drops", "2"), init="d"),
        Train("f", _early(128, "--epochs", "9", "--lr", "1e-3", "--lr-drops", "6", "8"), init="e"),
        Train("g", _early(192, "--epochs", "16", "--lr", "1e-3", "--lr-drops", "--eval-every", "2"), init="f"),
        Train("h", _early(192, "--epochs", "5", "--lr", "1e-4", "--lr-drops", "4"), init="g:last"),
        Train("i", _early(256, "--epochs", "16", "--lr", "1e-3", "--lr-drops", "12", "15", gpu=True), init="h"),
        Train("j", _early(256, "--epochs", "6", "--lr", "5e-4", "--lr-drops", "5", gpu=True), init="i",
              note="ran as 8 epochs (x0.1 after 5 and 7), stopped in epoch 8; best.pt was epoch 6"),
        Train("l", _late(256, "--epochs", "8", "--lr", "5e-4", "--lr-drops", "5", "7"), init="j"),
        Train("m", _late(320, "--epochs", "8", "--lr", "5e-4", "--lr-drops", "5", "7"), init="l"),
        Train("o", _late(384, "--epochs", "6", "--lr", "5e-4", "--lr-drops", "4", "5"), init="m"),
        Average("mo", ("m", "o")),
        Train("s", _late(320, "--epochs", "5", "--lr", "3e-4", "--lr-drops", "3", "4"), init="mo"),
        Grow("grown", "s", encoder_blocks=2, kpt_blocks=4),
        Train("t", _late(320, "--epochs", "5", "--lr", "5e-4", "--lr-drops", "4", *GROWN), init="grown"),
        Train("u", _late(320, "--epochs", "5", "--lr", "5e-4", "--lr-drops", "3", *GROWN), init="t"),
        Train("v", _late(320, "--epochs", "5", "--lr", "5e-4", "--lr-drops", "3", *GROWN), init="u"),
        Train("w", _late(320, "--epochs", "5", "--lr", "5e-4", "--lr-drops", "3", *GROWN), init="v"),
        Train("x", _late(320, "--epochs", "8", "--lr", "5e-4", "--lr-drops", "6", batch=32, train=TRAIN12K),
              init="w", note="ran on an H200 in fp16 autocast (--amp auto on CUDA)"),
        Train("y", _late(320, "--epochs", "5", "--lr", "5e-4", "--lr-drops", "3", batch=32, train=TRAIN12K),
              init="x", note="ran on an H200 in fp16 autocast (--amp auto on CUDA)"),
        Train("b2", _late(320, "--epochs", "3", "--lr", "5e-4", "--lr-drops", "2", *BF16, batch=32, train=TRAIN12K),
              init="y", note="ran as 4 epochs (x0.1 after 2), stopped after epoch 3"),
        Train("c2", _late(320, "--epochs", "2", "--lr", "2e-4", "--lr-drops", "1", *BF16, batch=32, train=TRAIN12K),
              init="b2"),
        Train("c2h", _late(320, "--epochs", "3", "--max-steps", "100", "--lr", "1e-2", "--lr-drops", "2",
                           "--eval-every", "3", "--labelled-head", "--train-only", "qem.labelled_logit.", *BF16,
                           batch=32, train=TRAIN12K, score="labelled_mean"),
              init="c2", note="the labelled head alone on frozen weights: 300 steps"),
        Train("d2", _late(320, "--epochs", "2", "--lr", "2e-4", "--lr-drops", "1", "--labelled-head", *BF16,
                          batch=32, train=TRAIN12K, score="labelled_mean"), init="c2h"),
        Average("soup", ("c2h", "d2")),
    ),
    measured=(
        Measured(("a", "b", "c", "d", "e", "f"), 85, "cpu", CPU),
        Measured(("g", "h"), 110, "cpu", CPU),
        Measured(("i", "j"), 4.5, "gpu", H200),
        Measured(("l",), 70, "cpu", CPU),
        Measured(("m",), 120, "cpu", CPU),
        Measured(("o",), 120, "cpu", CPU),
        Measured(("s",), 60, "cpu", CPU),
        Measured(("t",), 120, "cpu", CPU),
        Measured(("u",), 105, "cpu", CPU),
        Measured(("v",), 120, "cpu", CPU),
        Measured(("w",), 130, "cpu", CPU),
        Measured(("x", "y"), 11, "gpu", H200),
        Measured(("b2",), 100, "cpu", CPU),
        Measured(("c2",), 90, "cpu", CPU),
        Measured(("c2h",), 10, "cpu", CPU),
        Measured(("d2",), 70, "cpu", CPU),
    ),
    notes=(
        "Stages i, j, x and y ran on a GPU (--device auto picks it). On the CPU alone they would take about 3 hours "
        "(i, j: 132,000 images at 12-13 images/s) and 11 hours (x, y: 156,000 images at 4.0 images/s, the deepened "
        "network at 320 px in fp32), about 35 CPU hours for the whole recipe.",
        "Data generation is not counted above: 18,800 images, about 17 minutes of one core (0.055 s an image).",
    ),
)
