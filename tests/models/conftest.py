import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions run fastest single-threaded, and far more predictably on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth4(tmp_path_factory) -> Path:
    """Four 128 px synthetic images (seed 3), split "train"."""
    out = tmp_path_factory.mktemp("synth4")
    subprocess.run([sys.executable, "-m", "models.data.synth", "--out", str(out), "--num-images", "4", "--seed", "3",
                    "--size", "128"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    return out
