"""Two-process DDP training (torchrun, gloo on the CPU): it completes and both ranks end with the same weights."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_torchrun_two_processes_agree_on_weights(tmp_path):
    data = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "models.data.synth", "--out", str(data), "--num-images", "6", "--seed", "11"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "models.training.train", "--config", "tiny", "--synth", str(data), "--epochs", "1", "--batch-size", "2",
           "--input-size", "64", "--workers", "0", "--device", "cpu", "--no-progress", "--out", str(out),
           "--checksum-file", str(tmp_path / "weights_{rank}.sha256")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sums = [(tmp_path / f"weights_{r}.sha256").read_text().strip() for r in (0, 1)]
    assert len(sums[0]) == 64 and sums[0] == sums[1]
    assert "weights on 2 ranks agree" in proc.stdout
    # rank 0 wrote the checkpoint; it holds the same weights the ranks agreed on
    from models.checkpoint import load_checkpoint
    from models.training.distributed import state_checksum

    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert state["extra"]["epoch"] == 1
    assert state_checksum(load_checkpoint(out / "last.pt")) == sums[0]
