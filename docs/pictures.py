"""Regenerate the README's pictures with the project's own commands: ``make pictures`` or ``python docs/pictures.py``.

    docs/img/frame.png    one frame of the bundled clip, annotated by ``qem predict`` with the bundled checkpoint
    docs/img/decode.png   ``qem bench-decode`` on this machine's CPU (the torch backend; GPU rows need CUDA)

Both run on a CPU in well under a minute. The PNGs are kept small (< 150 KB) so the repository stays light.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
FRAME = 174  # a frame of the bundled clip with six people in full view (its ground truth)
WIDTH = 560  # scaled down from 640x360 and stored with a 256-colour palette to stay small


def qem(*args: str, **env: str) -> None:
    """``python -m models ARGS`` (the ``qem`` command) from the repository root; stops on failure."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    subprocess.run([sys.executable, "-m", "models", *args], cwd=ROOT, env=environ, check=True)


def frame_png(out: Path) -> None:
    import av
    import cv2
    from PIL import Image  # comes with matplotlib

    with tempfile.TemporaryDirectory() as tmp:
        qem("predict", "--source", "synth", "--no-show", "--no-jsonl", "--no-progress",
            "--max-frames", str(FRAME + 1), "--project", tmp, "--name", "frame")
        with av.open(str(Path(tmp) / "frame" / "annotated.mp4")) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    image = frames[min(FRAME, len(frames) - 1)]
    h, w = image.shape[:2]
    image = cv2.resize(image, (WIDTH, round(h * WIDTH / w)), interpolation=cv2.INTER_AREA)
    Image.fromarray(image).quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)


def decode_png(out: Path) -> None:
    # one torch thread and passive OpenMP waits: steady figures on a shared machine (BENCHMARKS.md)
    qem("bench-decode", "--threads", "1", "--repeats", "50", "--plot", str(out), OMP_WAIT_POLICY="PASSIVE")


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    frame_png(IMG / "frame.png")
    decode_png(IMG / "decode.png")
    for path in (IMG / "frame.png", IMG / "decode.png"):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
