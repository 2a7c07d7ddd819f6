"""Checkpoints round-trip, load with weights_only, and every bad file gives one CheckpointError line."""
import pickle

import pytest
import torch

from models import DEFAULT_CHECKPOINT, CheckpointError, Predictor, build_model, load_checkpoint, save_checkpoint
from models.checkpoint import FORMAT


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model("tiny", input_size=64, use_pqe=False, max_people=7).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", net, extra={"epoch": 3, "ap": 0.5})
    return net, path


def test_round_trip_restores_config_weights_and_outputs(saved):
    net, path = saved
    loaded = load_checkpoint(path)
    assert loaded.cfg == net.cfg and not loaded.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = net.dense(x), loaded.dense(x)
    assert torch.equal(a.score, b.score) and torch.equal(a.offsets, b.offsets)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["extra"] == {"epoch": 3, "ap": 0.5}
    assert not path.with_name(path.name + ".tmp").exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(saved, tmp_path):
    data = saved[1].read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable checkpoint: a zip archive \(PyTorch's format\) "
                                              r"cut short at \d+ bytes"):
        load_checkpoint(cut)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(build_model("tiny").state_dict(), plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt: a bare state_dict"):
        load_checkpoint(plain)
    other = tmp_path / "other.pt"
    torch.save({"epoch": 1, "weights": [1, 2]}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: not a qem-pose-checkpoint file"):
        load_checkpoint(other)
    pickled = tmp_path / "object.pt"
    with open(pickled, "wb") as f:  # an arbitrary pickled object: weights_only refuses it
        pickle.dump(Exception("x"), f)
    with pytest.raises(CheckpointError, match=r"object\.pt: not a readable checkpoint"):
        load_checkpoint(pickled)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a readable checkpoint: not a PyTorch file \(it starts "
                                              r"with b'hello'\)$"):
        load_checkpoint(text)


def test_config_and_weights_that_disagree(saved, tmp_path):
    payload = torch.load(saved[1], weights_only=True)
    payload["config"]["use_pqe"] = True  # PQE weights are absent from the file
    bad = tmp_path / "mismatch.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=r"mismatch\.pt: config and weights disagree: \d+ missing"):
        load_checkpoint(bad)
    payload = torch.load(saved[1], weights_only=True)
    payload["config"]["kpt_channels"] = 4
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(bad)
    payload["config"]["kpt_channels"] = 8
    payload["config"]["depth"] = 3
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="bad model config .*depth"):
        load_checkpoint(bad)
    payload = torch.load(saved[1], weights_only=True)
    del payload["config"]["offset_scale"]  # a file from before the field existed loads with its old meaning
    torch.save(payload, bad)
    assert load_checkpoint(bad).cfg.offset_scale == 1.0
    del payload["config"]["pose_score"]
    torch.save(payload, bad)
    assert load_checkpoint(bad).cfg.pose_score == "pqe"
    payload["config"]["pose_score"] = "best"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="pose_score='best'; choose one of pqe, keypoint_mean"):
        load_checkpoint(bad)
    payload["config"]["pose_score"] = "pqe"
    payload["version"] = 99
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(bad)


def test_checkpoint_error_is_a_value_error_and_the_default_path_is_bundled():
    assert issubclass(CheckpointError, ValueError)
    assert DEFAULT_CHECKPOINT.name == "tiny_synth.pt" and DEFAULT_CHECKPOINT.parent.name == "weights"
    if not DEFAULT_CHECKPOINT.exists():
        with pytest.raises(CheckpointError, match="tiny_synth.pt: checkpoint file not found"):
            Predictor()


def test_predictor_loads_a_checkpoint_path(saved):
    predictor = Predictor(saved[1])
    assert predictor.cfg == saved[0].cfg and predictor.input_size == 64
