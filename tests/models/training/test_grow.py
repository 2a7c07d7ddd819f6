"""models.training.grow: added blocks start as identities (same outputs as the original), then receive gradient;
blocks can only be added; the command line writes a loadable checkpoint or one error line."""
import pytest
import torch

from models import build_model, load_checkpoint, save_checkpoint
from models.training.grow import grow
from tests.cli import assert_one_error_line, run_module


def _trained_like(seed: int = 0, **overrides):
    """A tiny network at 64 px whose weights and BatchNorm statistics are all random (none at their defaults)."""
    torch.manual_seed(seed)
    net = build_model("tiny", input_size=64, **overrides)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.is_floating_point():
                t.copy_(0.3 * torch.randn_like(t))
    return net.eval()


def test_grown_network_computes_the_same_poses():
    net = _trained_like()
    grown = grow(net, encoder_blocks=2, kpt_blocks=4)
    assert (grown.cfg.encoder_blocks, grown.cfg.kpt_blocks) == (2, 4) and not grown.training
    assert len(grown.backbone.levels[0]) == 3 and len(grown.heads.keypoints.branches) == 4
    assert [b.conv1.dilation[0] for b in grown.heads.keypoints.branches] == [1, 2, 1, 2]
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = net.dense(x), grown.dense(x)
        for field in ("score", "offsets", "kfeat", "ifeat"):
            torch.testing.assert_close(getattr(b, field), getattr(a, field), rtol=0, atol=1e-5)
        (ca, sa), (cb, sb) = net.infer(x, decode_backend="torch"), grown.infer(x, decode_backend="torch")
    assert torch.equal(ca.indices, cb.indices)
    torch.testing.assert_close(sb.keypoints, sa.keypoints, rtol=0, atol=1e-4)
    torch.testing.assert_close(sb.keypoint_scores, sa.keypoint_scores, rtol=0, atol=1e-5)
    # the old weights are copied, the added blocks differ only by their zeroed last BatchNorm
    old = net.state_dict()
    assert all(torch.equal(t, old[k]) for k, t in grown.state_dict().items() if k in old)
    added = grown.backbone.levels[2][2]
    assert not added.bn2.weight.any() and not added.bn2.bias.any() and added.conv1.weight.abs().sum() > 0


def test_added_blocks_learn():
    net = _trained_like().train()
    grown = grow(net, encoder_blocks=2, kpt_blocks=3).train()
    assert net.training  # growing leaves the original's mode alone
    out = grown.dense(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)))
    (out.offsets.square().mean() + out.score.mean()).backward()
    for block in (grown.backbone.levels[1][2], grown.heads.keypoints.branches[2]):
        assert block.bn2.weight.grad.abs().sum() > 0 and block.bn2.bias.grad.abs().sum() > 0


def test_blocks_can_only_be_added():
    net = _trained_like(kpt_blocks=3)
    assert grow(net).cfg == net.cfg
    with pytest.raises(ValueError, match="blocks can only be added"):
        grow(net, kpt_blocks=2)
    with pytest.raises(ValueError, match="encoder_blocks=2 .* only for the tiny backbone"):
        build_model("realtime", encoder_blocks=2)
    with pytest.raises(ValueError, match="kpt_blocks must be >= 1"):
        build_model("tiny", kpt_blocks=0)


def test_command_line(tmp_path):
    net = _trained_like()
    path = save_checkpoint(tmp_path / "small.pt", net)
    out = tmp_path / "grown.pt"
    proc = run_module("models.training.grow", path, "--encoder-blocks", "3", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "encoder_blocks 1 -> 3" in proc.stdout
    grown = load_checkpoint(out)
    assert grown.cfg.encoder_blocks == 3 and grown.cfg.kpt_blocks == net.cfg.kpt_blocks
    assert torch.load(out, weights_only=True)["extra"] == {"grown_from": "small.pt"}
    assert_one_error_line(run_module("models.training.grow", tmp_path / "missing.pt", "--kpt-blocks", "3", "--out", out),
                          "missing.pt")
    assert_one_error_line(run_module("models.training.grow", out, "--encoder-blocks", "1", "--out", out),
                          "blocks can only be added")


def test_training_starts_from_a_grown_checkpoint(synth4, tmp_path):
    from models.training.train import TrainError, build_args, run

    grown = save_checkpoint(tmp_path / "grown.pt", grow(_trained_like(), encoder_blocks=2, kpt_blocks=3))
    argv = ["--config", "tiny", "--synth", str(synth4), "--input-size", "64", "--batch-size", "4", "--workers", "0",
            "--device", "cpu", "--no-progress", "--augment", "off", "--threads", "1", "--epochs", "1",
            "--init", str(grown)]
    run(build_args(argv + ["--out", str(tmp_path / "run"), "--encoder-blocks", "2", "--kpt-blocks", "3"]))
    assert load_checkpoint(tmp_path / "run" / "last.pt").cfg.encoder_blocks == 2
    # without the flags --init builds the checkpoint's depth; other flags are a different network
    run(build_args(argv + ["--out", str(tmp_path / "inherit")]))
    cfg = load_checkpoint(tmp_path / "inherit" / "last.pt").cfg
    assert (cfg.encoder_blocks, cfg.kpt_blocks) == (2, 3)
    with pytest.raises(TrainError, match=r"different model config \(kpt_blocks\)"):
        run(build_args(argv + ["--out", str(tmp_path / "other"), "--kpt-blocks", "4"]))
    with pytest.raises(TrainError, match=r"different model config \(backbone"):
        run(build_args(argv + ["--out", str(tmp_path / "wider"), "--config", "realtime"]))
