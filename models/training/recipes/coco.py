"""COCO recipes: DEKR's schedule as the starting point, on 8 GPUs (torchrun; several nodes with --nnodes). NOT YET
RUN: no COCO images or GPU hours for them are reachable here, so their wall times are estimates from the training
throughput measured on one H200 (RESULTS.md, "Training throughput"), assuming 8 GPUs scale linearly and the data
loader keeps up; evaluation time is not counted.

DEKR's schedule: Adam 1e-3, 140 epochs, x0.1 at 90 and 120, flip, rotation +-30 degrees, scale 0.75-1.5
(``--augment dekr``). Choices of ours: poses ranked by the labelled head's weighted keypoint score (the best
ranking measured on our synthetic data; COCO leaves even more keypoints unlabelled), validation every 10 epochs on
val2017 (5000 images), 10 images per GPU for HRNet-W32 at 512 as DEKR trains it, 32 for the smaller ``realtime``.
"""
from __future__ import annotations

from models.training.recipes.stages import Estimate, Recipe, Train

COCO_DATA = ("--train-ann", "{data}/annotations/person_keypoints_train2017.json", "--train-images", "{data}/train2017",
             "--val-ann", "{data}/annotations/person_keypoints_val2017.json", "--val-images", "{data}/val2017")
TRAIN_IMAGES = 64115  # train2017 images with at least one person annotation (KeypointDataset keeps those)
DATA_HELP = "the COCO root holding annotations/person_keypoints_{train,val}2017.json, train2017/ and val2017/"
DEKR = ("--epochs", "140", "--lr", "1e-3", "--lr-drops", "90", "120", "--augment", "dekr", "--eval-every", "10",
        "--labelled-head", "--pose-score", "labelled_mean")


def _eight_gpus(name: str, description: str, stages: tuple[Train, ...], estimate: Estimate,
                notes: tuple[str, ...]) -> Recipe:
    """A COCO recipe on 8 GPUs, not yet run."""
    return Recipe(name=name, description=description, data="coco",
                  status="NOT YET RUN: the wall time is an estimate from the throughput measured on one H200",
                  default_data="coco", data_help=DATA_HELP, processes=8, workers=12, stages=stages,
                  estimate=estimate, notes=notes)


def _coco(name: str, config: str, size: int, batch: int, images_per_s: float, pretrained: bool,
          note: str = "") -> Recipe:
    return _eight_gpus(
        name, f"{config} at {size} px on COCO train2017, DEKR's schedule, 8 GPUs",
        (Train("train", ("--config", config, *COCO_DATA, "--input-size", str(size), "--batch-size", str(batch),
                         *DEKR), pretrained=pretrained),),
        Estimate(TRAIN_IMAGES, images_per_s, gpus=8,
                 source=f"{config} at {size} px: {images_per_s:g} training images/s on one H200 (batch 32, fp16; "
                        f"RESULTS.md)"),
        ("8 GPUs at the measured speed each; the data loader must then decode and augment "
         f"{8 * images_per_s:.0f} JPEGs/s (about {8 * images_per_s / 40:.0f} loader processes at the 40 "
         "images/s per core measured for our PNGs).",) + ((note,) if note else ()))


def _from_dekr(name: str, config: str, size: int, batch: int, images_per_s: float) -> Recipe:
    """The paper's CIR + QEM fine-tuned from DEKR's COCO weights (``qem import dekr``, passed as --pretrained): the
    CIR score, instance features and KQE + PQE on DEKR's frozen network first, then every layer at a tenth of the
    rate. A short schedule of ours (DEKR's network is trained already): 20 + 30 epochs."""
    common = ("--config", config, *COCO_DATA, "--input-size", str(size), "--batch-size", str(batch), "--augment",
              "dekr", "--eval-every", "5", "--labelled-head", "--pose-score", "labelled_mean")
    return _eight_gpus(
        name, f"{config}: CIR + QEM on DEKR's COCO weights at {size} px, COCO train2017, 8 GPUs",
        (Train("heads", (*common, "--epochs", "20", "--lr", "1e-3", "--lr-drops", "15", "--train-only",
                         "heads.heat_out.", "qem."), pretrained=True,
               note="DEKR's backbone and heads frozen; the CIR score starts from its centre heatmap"),
         Train("all", (*common, "--epochs", "30", "--lr", "1e-4", "--lr-drops", "20"), init="heads")),
        Estimate(TRAIN_IMAGES, images_per_s, gpus=8,
                 source=f"hrnet_w32 at {size} px: {images_per_s:g} training images/s on one H200 (batch 32, fp16; "
                        f"RESULTS.md); DEKR's heads not measured on a GPU, and the first stage backpropagates "
                        f"through the heads only"),
        ("--pretrained is the checkpoint `qem import dekr` wrote from DEKR's COCO weights, not ImageNet weights.",))


HRNET_W32 = _coco("coco_hrnet_w32", "hrnet_w32", 512, batch=10, images_per_s=104, pretrained=True,
                  note="The speed was measured at batch 32 per GPU; at DEKR's 10 per GPU it may be lower.")
REALTIME = _coco("coco_realtime", "realtime", 320, batch=32, images_per_s=618, pretrained=False)
DEKR_QEM_W32 = _from_dekr("coco_dekr_qem_w32", "dekr_qem_w32", 512, batch=10, images_per_s=104)
