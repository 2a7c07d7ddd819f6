"""Checkpoint averaging: the weighted mean of every float tensor, the first file's config, one-line errors."""
import pytest
import torch

from models import CheckpointError, build_model, load_checkpoint, save_checkpoint
from models.training.average import average_checkpoints
from tests.cli import assert_one_error_line, run_module


def _saved(path, seed: int, **overrides):
    torch.manual_seed(seed)
    net = build_model("tiny", input_size=64, **overrides)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))
            else:
                t.fill_(seed)
    return net, save_checkpoint(path, net)


@pytest.fixture()
def pair(tmp_path):
    return _saved(tmp_path / "a.pt", 1, threshold=0.2), _saved(tmp_path / "b.pt", 2, threshold=0.4)


def test_mean_of_two_keeps_first_config_and_counters(pair):
    (a, path_a), (b, path_b) = pair
    avg = average_checkpoints([path_a, path_b])
    assert avg.cfg.threshold == 0.2 and not avg.training  # decode settings come from the first file
    sa, sb, so = a.state_dict(), b.state_dict(), avg.state_dict()
    for key, tensor in so.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (sa[key] + sb[key]) / 2, rtol=0, atol=1e-6)
        else:
            assert torch.equal(tensor, sa[key]), key


def test_weights_are_normalised(pair):
    (a, path_a), (b, path_b) = pair
    avg = average_checkpoints([path_a, path_b], weights=[3, 1])
    key = "backbone.stem.0.0.weight"
    torch.testing.assert_close(avg.state_dict()[key], 0.75 * a.state_dict()[key] + 0.25 * b.state_dict()[key],
                               rtol=0, atol=1e-6)
    only_a = average_checkpoints([path_a, path_b], weights=[1, 0])
    assert all(torch.equal(t, a.state_dict()[k]) for k, t in only_a.state_dict().items())


def test_bad_inputs(pair, tmp_path):
    (_, path_a), (_, path_b) = pair
    _, other = _saved(tmp_path / "wide.pt", 3, kpt_channels=4)
    with pytest.raises(CheckpointError, match=r"wide\.pt: a different network .*kpt_channels=4 against 8"):
        average_checkpoints([path_a, other])
    with pytest.raises(ValueError, match="1 weights for 2 checkpoints"):
        average_checkpoints([path_a, path_b], weights=[1])
    with pytest.raises(ValueError, match="weights must be >= 0"):
        average_checkpoints([path_a, path_b], weights=[1, -1])
    with pytest.raises(ValueError, match="no checkpoints"):
        average_checkpoints([])


def test_command_line(pair, tmp_path):
    (a, path_a), (b, path_b) = pair
    out = tmp_path / "soup.pt"
    proc = run_module("models.training.average", path_a, path_b, "--weights", "1", "3", "--out", out)
    assert proc.returncode == 0, proc.stderr
    payload = torch.load(out, weights_only=True)
    assert payload["extra"] == {"averaged": ["a.pt", "b.pt"], "weights": [0.25, 0.75]}
    key = "backbone.stem.0.0.weight"
    torch.testing.assert_close(load_checkpoint(out).state_dict()[key],
                               0.25 * a.state_dict()[key] + 0.75 * b.state_dict()[key], rtol=0, atol=1e-6)
    assert_one_error_line(run_module("models.training.average", path_a, tmp_path / "missing.pt", "--out", out), "missing.pt")
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert_one_error_line(run_module("models.training.average", path_a, path_b, "--out", blocked / "soup.pt"), "a_file")
