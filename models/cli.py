"""``qem``: one command line for the project (``python -m models`` in a checkout without installing).

    qem predict --source synth --no-show          the real-time pipeline (the same flags as python -m realtime)
    qem serve --cameras cameras.yaml --sink mqtt://127.0.0.1:1883/qem   a camera fleet on Ray (docs/cluster.md)
    qem synth --out data/synth --num-images 500   draw a synthetic COCO-format data set
    qem train --synth data/synth --epochs 20      train (torchrun -m models.training.train for several GPUs)
    qem train --recipe tiny_synth                 every stage that made the bundled checkpoint, resumable
    qem val --data data/synth                     COCO keypoint AP of a checkpoint (the bundled one by default)
    qem export --format openvino --dynamic        export the bundled checkpoint (run it with --weights DIR)
    qem import dekr pose_dekr_hrnetw32_coco.pth   DEKR's published weights -> dekr_w32_coco.pt (real people)
    qem bench                                     pipeline benchmarks;  qem bench-decode: decode micro-benchmarks
    qem track-eval runs/webcam/poses.jsonl --truth realtime/assets/synth_clip.json

Each command is a thin door to one module's ``main(argv)``; ``qem COMMAND --help`` shows its flags and examples.
This module sits at the top of the call graph (it reaches realtime/ and kernels/ too) and is imported by nothing.
"""
from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("realtime.cli", "run the real-time pipeline on a camera, stream, file, folder or the bundled clip"),
    "serve": ("realtime.fleet.cli", "a camera fleet on a Ray cluster, with failover (needs .[cluster])"),
    "synth": ("models.data.synth", "draw synthetic people: COCO-format images (or --video clips with track ids)"),
    "train": ("models.training.train", "train a network (CIR + QEM); --recipe NAME runs every stage of a recipe"),
    "val": ("models.evaluation.evaluate", "evaluate a checkpoint: COCO keypoint AP and score/OKS rank correlation"),
    "bench": ("realtime.bench.cli", "pipeline benchmarks: FPS and per-stage latency"),
    "bench-decode": ("kernels.bench", "decode micro-benchmarks: reference vs Triton vs CuPy vs CUDA graphs"),
    "track-eval": ("realtime.bench.track_eval", "tracking quality of a poses.jsonl against ground-truth identities"),
    "speed": ("models.evaluation.speed", "network size, FLOPs and CPU forward time of each config"),
    "average": ("models.training.average", "average the weights of checkpoints of one config (a model soup)"),
    "grow": ("models.training.grow", "deepen a trained network without changing its outputs"),
    "import": ("models.imports.cli", "convert published weights (DEKR's COCO / CrowdPose) into a checkpoint"),
    "export": ("models.export.exporter", "export a checkpoint to ONNX or OpenVINO (one self-contained file/folder)"),
    "ablation": ("models.training.ablation", "train and evaluate the four rows of the CIR/KQE/PQE ablation"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return f"usage: qem COMMAND [ARGS ...]\n\ncommands:\n{rows}\n\n{__doc__.split(chr(10) + chr(10))[1]}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version", "version"):
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"qem-pose {version('qem-pose')}")
        except PackageNotFoundError:
            print("qem-pose (not installed: running from a checkout)")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)} (qem --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command == "predict":
        return module.main(rest, prog="qem predict") or 0
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
