"""COCO and CrowdPose recipes: DEKR's schedule as the starting point, on 8 GPUs (torchrun; several nodes with
--nnodes). NOT YET RUN: no COCO or CrowdPose images or GPU hours for them are reachable here, so their wall times are
estimates from the training throughput measured on one H200 (RESULTS.md, "Training throughput"), assuming 8 GPUs
scale linearly and the data loader keeps up; evaluation time is not counted.

DEKR's schedule: Adam 1e-3, 140 epochs, x0.1 at 90 and 120, flip, rotation +-30 degrees, scale 0.75-1.5
(``--augment dekr``). Choices of ours: poses ranked by the labelled head's weighted keypoint score (the best
ranking measured on our synthetic data; COCO leaves even more keypoints unlabelled), validation every 10 epochs on
val2017 (5000 images), 10 images per GPU for HRNet-W32 at 512 as DEKR trains it, 32 for the smaller ``realtime``.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.training.recipes.stages import Estimate, Recipe, Train


@dataclass(frozen=True)
class DataSet:
    """A published data set as a recipe reads it from ``--data``: the meta label, the training arguments naming its
    files (``{data}`` is the folder), how many training images it has, what the folder must hold."""
    label: str
    args: tuple[str, ...]
    train_images: int
    help: str


COCO = DataSet("coco", ("--train-ann", "{data}/annotations/person_keypoints_train2017.json", "--train-images",
                        "{data}/train2017", "--val-ann", "{data}/annotations/person_keypoints_val2017.json",
                        "--val-images", "{data}/val2017"),
               train_images=64115,  # train2017 images with at least one person annotation (KeypointDataset keeps those)
               help="the COCO root holding annotations/person_keypoints_{train,val}2017.json, train2017/ and val2017/")
# CrowdPose as its authors publish it (and DEKR reads it): json/ and one images/ folder; trained on trainval (10,000
# + 2,000 images), validated on test (8,000), as DEKR reports it
CROWDPOSE = DataSet("crowdpose", ("--train-ann", "{data}/json/crowdpose_trainval.json", "--train-images",
                                  "{data}/images", "--val-ann", "{data}/json/crowdpose_test.json", "--val-images",
                                  "{data}/images"),
                    train_images=12000,
                    help="the CrowdPose root holding json/crowdpose_{trainval,test}.json and images/")
DEKR = ("--epochs", "140", "--lr", "1e-3", "--lr-drops", "90", "120", "--augment", "dekr", "--eval-every", "10",
        "--labelled-head", "--pose-score", "labelled_mean")


def _eight_gpus(name: str, description: str, stages: tuple[Train, ...], estimate: Estimate,
                notes: tuple[str, ...], data: DataSet = COCO) -> Recipe:
    """A recipe on 8 GPUs, not yet run."""
    return Recipe(name=name, description=description, data=data.label,
                  status="NOT YET RUN: the wall time is an estimate from the throughput measured on one H200",
                  default_data=data.label, data_help=data.help, processes=8, workers=12, stages=stages,
                  estimate=estimate, notes=notes)


def _coco(name: str, config: str, size: int, batch: int, images_per_s: float, pretrained: bool,
          note: str = "") -> Recipe:
    return _eight_gpus(
        name, f"{config} at {size} px on COCO train2017, DEKR's schedule, 8 GPUs",
        (Train("train", ("--config", config, *COCO.args, "--input-size", str(size), "--batch-size", str(batch),
                         *DEKR), pretrained=pretrained),),
        Estimate(COCO.train_images, images_per_s, gpus=8,
                 source=f"{config} at {size} px: {images_per_s:g} training images/s on one H200 (batch 32, fp16; "
                        f"RESULTS.md)"),
        ("8 GPUs at the measured speed each; the data loader must then decode and augment "
         f"{8 * images_per_s:.0f} JPEGs/s (about {8 * images_per_s / 40:.0f} loader processes at the 40 "
         "images/s per core measured for our PNGs).",) + ((note,) if note else ()))


def _from_dekr(name: str, config: str, size: int, batch: int, images_per_s: float, data: DataSet = COCO,
               epochs: tuple[int, int] = (20, 30)) -> Recipe:
    """The paper's CIR + QEM fine-tuned from DEKR's weights on ``data`` (``qem import dekr`` of the weights DEKR
    trained on it, passed as --pretrained): the CIR score, instance features and KQE + PQE on DEKR's frozen network
    first, then every layer at a tenth of the rate, each stage's rate dropped x0.1 after three quarters of it
    (rounded to 5). A short schedule of ours (DEKR's network is trained already): ``epochs`` (heads, all)."""
    heads, whole = epochs
    common = ("--config", config, *data.args, "--input-size", str(size), "--batch-size", str(batch), "--augment",
              "dekr", "--eval-every", "5", "--labelled-head", "--pose-score", "labelled_mean")
    return _eight_gpus(
        name, f"{config}: CIR + QEM on DEKR's {data.label} weights at {size} px, {data.label}, 8 GPUs",
        (Train("heads", (*common, "--epochs", str(heads), "--lr", "1e-3", "--lr-drops", str(_drop(heads)),
                         "--train-only", "heads.heat_out.", "qem."), pretrained=True,
               note="DEKR's backbone and heads frozen; the CIR score starts from its centre heatmap"),
         Train("all", (*common, "--epochs", str(whole), "--lr", "1e-4", "--lr-drops", str(_drop(whole))),
               init="heads")),
        Estimate(data.train_images, images_per_s, gpus=8,
                 source=f"hrnet_w32 at {size} px: {images_per_s:g} training images/s on one H200 (batch 32, fp16; "
                        f"RESULTS.md); DEKR's heads not measured on a GPU, and the first stage backpropagates "
                        f"through the heads only"),
        (f"--pretrained is the checkpoint `qem import dekr --data {data.label}` wrote from DEKR's {data.label} "
         "weights, not ImageNet weights.",), data)


def _drop(epochs: int) -> int:
    return 5 * round(0.75 * epochs / 5)


HRNET_W32 = _coco("coco_hrnet_w32", "hrnet_w32", 512, batch=10, images_per_s=104, pretrained=True,
                  note="The speed was measured at batch 32 per GPU; at DEKR's 10 per GPU it may be lower.")
REALTIME = _coco("coco_realtime", "realtime", 320, batch=32, images_per_s=618, pretrained=False)
DEKR_QEM_W32 = _from_dekr("coco_dekr_qem_w32", "dekr_qem_w32", 512, batch=10, images_per_s=104)
# CrowdPose: DEKR trains 300 epochs on its 12,000 images; the same share of that schedule as on COCO (50 of 140
# epochs) is about 100 epochs here
CROWDPOSE_DEKR_QEM_W32 = _from_dekr("crowdpose_dekr_qem_w32", "dekr_qem_w32_crowdpose", 512, batch=10,
                                    images_per_s=104, data=CROWDPOSE, epochs=(40, 60))
