"""Predictor: letterbox undone into image pixels, flip test mirror-consistent, stages compose, bad input caught."""
import numpy as np
import pytest
import torch

from kernels.candidates import Candidates
from models import Predictor, build_model
from models.keypoints import FLIP_INDEX
from models.inference.views import mirror_maps
from models.preprocess import Letterbox
from models.modeling.qem import SparseOutput

K = 17


def lively_net(**overrides):
    """A random tiny net whose outputs all matter: peaks everywhere, large keypoint-specific offsets, and
    non-zero KQE/PQE residuals (their zero initialisation would hide mistakes)."""
    torch.manual_seed(0)
    net = build_model("tiny", input_size=64, threshold=0.3, max_people=6, nms_kernel=3, pose_nms="none",
                      **overrides).eval()
    with torch.no_grad():
        net.heads.score.out.weight.normal_(0, 0.5)
        net.heads.score.out.bias.fill_(0.0)
        net.heads.keypoints.offset.weight.normal_(0, 0.3)
        net.heads.keypoints.offset.bias.copy_(torch.randn(2 * K) * 4)
        net.qem.kqe.delta.weight.normal_(0, 0.3)
        net.qem.pqe.head[-1].weight.normal_(0, 0.3)
    return net


def test_postprocess_maps_feature_pixels_to_odd_sized_image_pixels():
    predictor = Predictor(build_model("tiny", pose_nms="none"), input_size=256)
    box = Letterbox.fit(359, 641, 256)  # scale 256/641, content 256 x 143, pad_y 56
    assert box.pad_x == 0 and box.pad_y == 56
    kp = torch.zeros(1, 2, K, 2)
    kp[0, 0, :, 0], kp[0, 0, :, 1] = 10.0, 20.0   # feature px -> input px (41.5, 81.5)
    kp[0, 1, :, 0], kp[0, 1, :, 1] = 63.0, 49.0   # -> input (253.5, 197.5)
    cands = Candidates(scores=torch.tensor([[0.9, 0.8]]), indices=torch.tensor([[0, 1]]),
                       valid=torch.tensor([[True, True]]), keypoints=kp, kpt_queries=torch.zeros(1, 2, K, 8),
                       inst_queries=torch.zeros(1, 2, 32))
    out = SparseOutput(keypoints=kp, keypoint_scores=torch.full((1, 2, K), 0.5),
                       score_logits=torch.tensor([[0.0, 2.0]]), keypoint_logits=torch.zeros(1, 2, K))
    poses = predictor.postprocess((cands, out), [box])[0]
    sx, sy = 256 / 641, 143 / 359  # content 256 x 143; resizing aligns pixel centres
    expected = np.array([[(253.5 - (sx - 1) / 2) / sx, (197.5 - 56 - (sy - 1) / 2) / sy],
                         [(41.5 - (sx - 1) / 2) / sx, (81.5 - 56 - (sy - 1) / 2) / sy]])
    np.testing.assert_allclose(poses.keypoints[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(poses.scores, [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)  # sorted by score
    assert poses.keypoints[0, 0, 0] == pytest.approx(635.49, abs=0.01)  # inside the 641-wide image


def test_pose_score_setting_orders_the_poses():
    """Pose 0 wins on the PQE score, pose 1 on its mean keypoint score; the checkpoint's setting is the default."""
    kp = torch.zeros(1, 2, K, 2)
    kp[0, 1] += 30.0
    cands = Candidates(scores=torch.tensor([[0.9, 0.8]]), indices=torch.tensor([[0, 1]]),
                       valid=torch.tensor([[True, True]]), keypoints=kp, kpt_queries=torch.zeros(1, 2, K, 8),
                       inst_queries=torch.zeros(1, 2, 32))
    out = SparseOutput(keypoints=kp, keypoint_scores=torch.tensor([[[0.3] * K, [0.7] * K]]),
                       score_logits=torch.tensor([[3.0, 0.0]]), keypoint_logits=torch.zeros(1, 2, K))
    box = Letterbox.fit(256, 256, 256)
    net = build_model("tiny", pose_nms="none", pose_score="keypoint_mean")
    by_keypoints = Predictor(net).postprocess((cands, out), [box])[0]
    np.testing.assert_allclose(by_keypoints.scores, [0.7, 0.3], rtol=1e-6)
    assert by_keypoints.keypoints[0, 0, 0] > by_keypoints.keypoints[1, 0, 0]
    by_pqe = Predictor(net, pose_score="pqe").postprocess((cands, out), [box])[0]
    np.testing.assert_allclose(by_pqe.scores, [1 / (1 + np.exp(-3.0)), 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown pose_score 'max'"):
        Predictor(net, pose_score="max")


def test_predict_on_an_odd_image_equals_the_letterboxed_canvas_mapped_back():
    predictor = Predictor(lively_net(), input_size=64)
    image = np.random.default_rng(0).integers(0, 256, (359, 641, 3), dtype=np.uint8)
    poses = predictor.predict([image])[0]
    batch, boxes = predictor.preprocess([image])
    canvas = ((batch[0].permute(1, 2, 0) * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406]))
              * 255).round().clamp(0, 255).byte().numpy()
    on_canvas = predictor.predict([canvas])[0]
    assert len(poses) > 0 and len(poses) == len(on_canvas)
    np.testing.assert_allclose(poses.keypoints, boxes[0].to_image(on_canvas.keypoints), atol=1e-3)
    np.testing.assert_allclose(poses.scores, on_canvas.scores, atol=1e-6)


def lively_snapping_net():
    """``lively_net`` with keypoint heatmaps peaking all over the map and snapping on."""
    net = lively_net(keypoint_heatmaps=True, snap_radius=2, snap_threshold=0.3)
    with torch.no_grad():
        net.heads.heatmaps.out.weight.normal_(0, 1.0)
        net.heads.heatmaps.out.bias.fill_(0.0)
    return net


def lively_labelled_net():
    """``lively_net`` with the labelled head, scoring poses by ``labelled_mean``: its pose scores are
    mirror-consistent only if the labelled logits swap left and right too."""
    net = lively_net(labelled_head=True, pose_score="labelled_mean")
    with torch.no_grad():
        net.qem.labelled_logit.weight.normal_(0, 1.0)
    return net


@pytest.mark.parametrize("make_net, shifts", [(lively_net, ()), (lively_snapping_net, ()), (lively_labelled_net, ()),
                                              (lively_labelled_net, (8, 20))])
def test_flip_test_mirrors_keypoints_and_swaps_identities(make_net, shifts):
    """With shifts too: a shifted mirrored view of an image is the shifted plain view of its mirror image."""
    predictor = Predictor(make_net(), input_size=64, flip_test=True, shift_test=shifts)
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a = predictor.predict([image])[0]
    b = predictor.predict([np.ascontiguousarray(image[:, ::-1])])[0]
    assert len(a) == len(b) > 0
    mirrored = a.keypoints[:, list(FLIP_INDEX)].copy()
    mirrored[..., 0] = 63 - mirrored[..., 0]
    order_a, order_b = np.lexsort(mirrored[:, 0].T[::-1]), np.lexsort(b.keypoints[:, 0].T[::-1])
    np.testing.assert_allclose(b.keypoints[order_b], mirrored[order_a], atol=1e-3)
    np.testing.assert_allclose(b.keypoint_scores[order_b], a.keypoint_scores[order_a][:, list(FLIP_INDEX)],
                               atol=1e-5)
    np.testing.assert_allclose(b.scores[order_b], a.scores[order_a], atol=1e-5)
    # Left and right really differ here, so a missing swap could not pass unnoticed.
    assert np.abs(a.keypoints[:, 1] - a.keypoints[:, 2]).max() > 1.0


def test_mirrored_maps_place_each_keypoint_at_its_mirror_image_with_the_other_identity():
    b, h, w = 1, 5, 7
    offsets = torch.randn(b, 2 * K, h, w) * 3
    score = torch.randn(b, 1, h, w)
    score_m, offsets_m = mirror_maps(score, offsets)
    y, x = 2, 1
    xm = w - 1 - x
    assert score_m[0, 0, y, xm] == score[0, 0, y, x]
    for k in range(K):
        kx, ky = x + offsets[0, 2 * k, y, x], y + offsets[0, 2 * k + 1, y, x]  # keypoint k, original view
        j = FLIP_INDEX[k]  # it is keypoint j in the mirrored view, at (w-1-kx, ky), seen from pixel (y, xm)
        assert torch.isclose(xm + offsets_m[0, 2 * j, y, xm], w - 1 - kx)
        assert torch.isclose(y + offsets_m[0, 2 * j + 1, y, xm], ky)
    back = mirror_maps(score_m, offsets_m)
    assert torch.equal(back[0], score) and torch.equal(back[1], offsets)


def test_snapping_moves_keypoints_onto_heatmap_peaks():
    net = lively_snapping_net()
    image = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    snapped = Predictor(net, input_size=64).predict([image])[0]
    plain = Predictor(net, input_size=64, snap_radius=0).predict([image])[0]
    assert len(plain) == len(snapped) > 0
    moved = np.abs(snapped.keypoints - plain.keypoints).max(-1) > 1e-4
    assert 0 < moved.mean() < 1  # most of these random keypoints lie off the 16x16 map and stay
    # a moved keypoint lies within the window: 2 map pixels (+ rounding and sub-pixel shift) = 4 input px each
    assert (np.abs(snapped.keypoints - plain.keypoints)[moved] <= 4 * 3.0 + 1e-3).all()


def test_flip_test_changes_the_result_and_stages_compose():
    net = lively_net()
    image = np.random.default_rng(2).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    plain = Predictor(net, input_size=64)
    flipped = Predictor(net, input_size=64, flip_test=True)
    batch, boxes = plain.preprocess([image, image])
    staged = plain.postprocess(plain.forward(batch), boxes)
    direct = plain.predict([image, image])
    np.testing.assert_array_equal(staged[1].keypoints, direct[0].keypoints)
    assert not np.allclose(flipped.predict([image])[0].keypoints, direct[0].keypoints)


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="keypoint heatmaps"):
        Predictor(lively_net(), snap_radius=2)
    with pytest.raises(ValueError, match="snap_threshold"):
        Predictor(lively_snapping_net(), snap_threshold=1.5)
    with pytest.raises(ValueError, match="needs a model with the labelled head"):
        Predictor(lively_net(), pose_score="labelled_mean")
    predictor = Predictor(build_model("tiny"), input_size=64)
    with pytest.raises(ValueError, match="image 0: expected an RGB uint8 HxWx3"):
        predictor.predict([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="image 1: expected an RGB uint8"):
        predictor.predict([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match="image 0: expected an RGB uint8 HxWx3"):
        predictor.predict([np.zeros((0, 10, 3), np.uint8)])
    with pytest.raises(TypeError, match="list of images"):
        predictor.predict(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="half=True needs a CUDA device"):
        Predictor(build_model("tiny"), half=True)
    with pytest.raises(ValueError, match="multiple of 32"):
        Predictor(build_model("tiny"), input_size=100)
    assert predictor.predict([]) == []


@pytest.mark.gpu
def test_half_precision_on_cuda_runs_the_triton_decode_and_agrees_with_fp32():
    image = np.random.default_rng(3).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    cpu = Predictor(lively_net(), input_size=64)
    gpu = Predictor(lively_net(), device="cuda", input_size=64, half=True, flip_test=True)
    batch, _ = cpu.preprocess([image])
    with torch.inference_mode():
        ref = cpu.net.dense(batch)
        half = gpu.net.dense(batch.cuda().half())
    torch.testing.assert_close(half.score.float().cpu(), ref.score, atol=0.05, rtol=0.05)
    torch.testing.assert_close(half.offsets.float().cpu(), ref.offsets, atol=0.1, rtol=0.05)
    poses = gpu.predict([image])[0]
    assert len(poses) > 0 and np.isfinite(poses.keypoints).all()
    assert ((poses.scores >= 0) & (poses.scores <= 1)).all()


def test_rect_input_finds_the_same_people_as_the_square_one_on_a_clip_frame():
    """The bundled model on a 640x360 frame of the bundled clip: a 320x192 input instead of 320x320 (padding is
    all that differs), the same people within a pixel or two."""
    import av

    from realtime import BUNDLED_CLIP

    with av.open(str(BUNDLED_CLIP)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    rect, square = Predictor(), Predictor(rect=False)
    batch, _ = rect.preprocess([frame])
    assert tuple(batch.shape) == (1, 3, 192, 320)
    a, b = rect.predict([frame])[0], square.predict([frame])[0]
    confident = lambda p: p.keypoints[p.scores > 0.5]  # noqa: E731
    ka, kb = confident(a), confident(b)
    assert len(ka) == len(kb) >= 3
    dist = np.linalg.norm(ka[:, None, :, :2] - kb[None, :, :, :2], axis=-1).mean(-1)  # [A, B] mean keypoint px
    assert (dist.min(axis=1) < 3.0).all(), dist.min(axis=1)


def test_synthetic_only_weights_warn_once_and_a_network_of_ones_own_never(tmp_path):
    import warnings

    from models import DEFAULT_CHECKPOINT, save_checkpoint
    from models.provenance import SyntheticOnlyWarning

    photo = [np.zeros((90, 60, 3), np.uint8)]
    saved = save_checkpoint(tmp_path / "synth.pt", build_model("tiny"), meta={"data": "synthetic"})
    predictor = Predictor(saved, input_size=64)
    with pytest.warns(SyntheticOnlyWarning, match="trained on synthetic figures only .* docs/training.md"):
        predictor.predict(photo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(photo)  # once per Predictor
        Predictor(build_model("tiny"), input_size=64).predict(photo)
    if __import__("pathlib").Path(DEFAULT_CHECKPOINT).is_file():
        with pytest.warns(SyntheticOnlyWarning):
            Predictor(input_size=64).predict(photo)


def test_poses_repr_gives_counts_not_arrays():
    from models.poses import Poses

    poses = Poses(np.zeros((7, 17, 2), np.float32), np.zeros((7, 17), np.float32),
                  np.linspace(0.9, 0.3, 7).astype(np.float32))
    assert repr(poses) == "Poses(7 people, 17 keypoints, scores [0.90, 0.80, 0.70, 0.60, 0.50, ...])"
    assert repr(Poses.empty()) == "Poses(0 people, 17 keypoints, scores [])"
