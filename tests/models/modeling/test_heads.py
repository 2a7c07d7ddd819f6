"""Dense heads: one independent regression branch per keypoint, documented channel order, score prior."""
import torch

from models import build_model

K = 17


def test_each_keypoint_branch_sees_only_its_own_channels():
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    head = net.heads.keypoints
    ck = net.cfg.kpt_channels
    x = torch.randn(1, ck * K, 12, 12, requires_grad=True)
    kfeat = head.branches(x)
    k = 5
    kfeat[:, k * ck:(k + 1) * ck].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 2, 3))
    assert grad[k * ck:(k + 1) * ck].sum() > 0
    assert grad[: k * ck].sum() == 0 and grad[(k + 1) * ck:].sum() == 0
    kf = torch.randn(1, ck * K, 4, 4, requires_grad=True)
    head.offset(kf)[:, [2 * k, 2 * k + 1]].sum().backward()  # (dx_k, dy_k) come from branch k alone
    grad = kf.grad.abs().sum(dim=(0, 2, 3))
    assert grad[k * ck:(k + 1) * ck].sum() > 0 and grad.sum() == grad[k * ck:(k + 1) * ck].sum()


def test_fresh_score_map_starts_at_the_prior():
    net = build_model("tiny").eval()
    with torch.no_grad():
        score = torch.sigmoid(net.dense(torch.randn(1, 3, 64, 64)).score)
    assert torch.allclose(score, torch.full_like(score, 0.01), atol=2e-3)


def test_offsets_keep_the_weights_precision_under_autocast():
    """bf16 would round an offset of 16-32 map px to 1/8 px, so the offset layer runs outside autocast."""
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    head = net.heads.keypoints
    with torch.no_grad():
        head.offset.bias.fill_(5.0)  # offsets around 20 map px, where bf16's step is 1/8
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net.dense(torch.randn(1, 3, 64, 64))
        assert out.kfeat.dtype == torch.bfloat16 and out.offsets.dtype == torch.float32
        exact = head.offset(out.kfeat.float()) * head.offset_scale
    assert torch.equal(out.offsets, exact)
    assert not torch.equal(exact, exact.to(torch.bfloat16).float())
