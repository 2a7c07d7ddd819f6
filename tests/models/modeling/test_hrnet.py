"""An official-style HRNet ImageNet checkpoint (names and shapes written out here from the official layout)
loads into our backbone by name; the classification head is ignored; wrong files fail clearly."""
import pytest
import torch

from models import build_model
from models.modeling.backbones import HRNet, load_pretrained


def bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def conv_bn(prefix: str, cin: int, cout: int, k: int) -> dict:
    return {f"{prefix}.0.weight": (cout, cin, k, k), **bn(f"{prefix}.1", cout)}


def official_hrnet_shapes(width: int) -> dict:
    """Key -> shape of HRNet-Image-Classification's ``HighResolutionNet`` (cls_hrnet.py), head included."""
    s = {"conv1.weight": (64, 3, 3, 3), **bn("bn1", 64), "conv2.weight": (64, 64, 3, 3), **bn("bn2", 64)}
    for i in range(4):  # layer1: 4 Bottlenecks, 64 planes, expansion 4
        cin = 64 if i == 0 else 256
        s.update({f"layer1.{i}.conv1.weight": (64, cin, 1, 1), **bn(f"layer1.{i}.bn1", 64),
                  f"layer1.{i}.conv2.weight": (64, 64, 3, 3), **bn(f"layer1.{i}.bn2", 64),
                  f"layer1.{i}.conv3.weight": (256, 64, 1, 1), **bn(f"layer1.{i}.bn3", 256)})
    s.update(conv_bn("layer1.0.downsample", 64, 256, 1))
    pre = [256]
    for stage, (branches, modules) in zip((2, 3, 4), ((2, 1), (3, 4), (4, 3))):
        cur = [width * 2 ** b for b in range(branches)]
        t = f"transition{stage - 1}"
        for i, c in enumerate(cur):
            if i < len(pre) and pre[i] != c:
                s.update(conv_bn(f"{t}.{i}", pre[i], c, 3))
            elif i >= len(pre):
                for j in range(i + 1 - len(pre)):
                    out = c if j == i - len(pre) else pre[-1]
                    s.update(conv_bn(f"{t}.{i}.{j}", pre[-1], out, 3))
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for b, c in enumerate(cur):
                for blk in range(4):
                    q = f"{p}.branches.{b}.{blk}"
                    s.update({f"{q}.conv1.weight": (c, c, 3, 3), **bn(f"{q}.bn1", c),
                              f"{q}.conv2.weight": (c, c, 3, 3), **bn(f"{q}.bn2", c)})
            for i in range(branches):
                for j in range(branches):
                    if j > i:
                        s.update(conv_bn(f"{p}.fuse_layers.{i}.{j}", cur[j], cur[i], 1))
                    elif j < i:
                        for k in range(i - j):
                            s.update(conv_bn(f"{p}.fuse_layers.{i}.{j}.{k}", cur[j],
                                             cur[i] if k == i - j - 1 else cur[j], 3))
        pre = cur
    # classification head: must be ignored
    s.update({"incre_modules.0.0.conv1.weight": (32, width, 1, 1), "downsamp_modules.0.0.weight": (256, 128, 3, 3),
              "final_layer.0.weight": (2048, 1024, 1, 1), "classifier.weight": (1000, 2048),
              "classifier.bias": (1000,)})
    return s


def make_state(width: int) -> dict:
    return {k: torch.full(shape, 0.5) if shape else torch.tensor(7) for k, shape in
            official_hrnet_shapes(width).items()}


def test_official_names_cover_our_backbone_exactly():
    ours = {k: tuple(v.shape) for k, v in HRNet(32).state_dict().items()}
    official = {k: v for k, v in official_hrnet_shapes(32).items()
                if not k.startswith(("incre", "downsamp", "final_layer", "classifier"))}
    assert ours == official


@pytest.mark.slow
def test_official_checkpoint_loads_by_name_from_a_local_path(tmp_path):
    state = make_state(32)
    marker = torch.randn(64, 64, 3, 3)
    state["stage3.2.fuse_layers.2.0.1.0.weight"] = torch.randn(128, 32, 3, 3)
    state["conv2.weight"] = marker
    path = tmp_path / "hrnetv2_w32_imagenet_pretrained.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    net = build_model("hrnet_w32", pretrained=path)
    assert torch.equal(net.backbone.conv2.weight, marker)
    assert torch.equal(net.backbone.stage3[2].fuse_layers[2][0][1][0].weight,
                       state["stage3.2.fuse_layers.2.0.1.0.weight"])
    assert net.backbone.stage4[2].branches[3][3].bn2.running_var.eq(0.5).all()
    assert int(net.backbone.bn1.num_batches_tracked) == 7


def test_wrong_or_missing_pretrained_files_fail_clearly(tmp_path):
    net = HRNet(32)
    with pytest.raises(ValueError, match="not found"):
        load_pretrained(net, tmp_path / "nope.pth")
    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(ValueError, match="partial.pth: .* HRNet tensors missing"):
        load_pretrained(net, partial)
    w18 = tmp_path / "w18.pth"
    torch.save({k: torch.zeros(v) for k, v in official_hrnet_shapes(18).items()}, w18)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained(net, w18)
    with pytest.raises(ValueError, match="HRNet backbones only"):
        build_model("tiny", pretrained=w18)
