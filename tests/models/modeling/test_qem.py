"""QEM: training candidates match the decode; residuals start at zero; the pose code is scale-free; pose scores."""
import pytest
import torch

from kernels.decode_ref import decode_ref
from models import build_model
from models.modeling.qem import PQE, SparseOutput, candidates_at, fourier_features, pose_scores

K = 17


def random_dense(net, b=2, size=64):
    with torch.no_grad():
        return net.dense(torch.randn(b, 3, size, size))


def test_training_candidates_equal_the_reference_decode():
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    dense = random_dense(net)
    dense.offsets.normal_(0, 6)  # keypoints far from the peak, some outside the map
    dense.score.normal_(0, 2)
    ref = decode_ref(dense.score, dense.offsets, dense.kfeat, dense.ifeat, max_people=40, threshold=0.5,
                     nms_kernel=3)
    assert ref.valid.sum() > 5 and not ref.valid.all()
    ours = candidates_at(dense.score, dense.offsets, dense.kfeat, dense.ifeat, ref.indices)
    for name in ("indices", "valid"):
        assert torch.equal(getattr(ours, name), getattr(ref, name))
    for name in ("scores", "keypoints", "kpt_queries", "inst_queries"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-5, atol=1e-5)


def test_fresh_sparse_stage_keeps_the_coarse_pose_and_the_dense_score():
    torch.manual_seed(0)
    for use_pqe in (True, False):
        net = build_model("tiny", use_pqe=use_pqe, threshold=0.0099, nms_kernel=1, max_people=5).eval()
        dense = random_dense(net, b=1)
        dense.offsets.normal_(0, 3)
        cands = net.decode(dense)
        out = net.sparse(dense, cands)
        assert cands.valid.all()
        torch.testing.assert_close(out.keypoints, cands.keypoints)
        peak = dense.score.flatten(1).gather(1, cands.indices)
        torch.testing.assert_close(out.score_logits, peak)


def test_kqe_off_keeps_coarse_keypoints_and_unused_slots_are_zero():
    torch.manual_seed(0)
    net = build_model("tiny", use_kqe=False, max_people=4).eval()
    dense = random_dense(net, b=1)
    with torch.no_grad():
        dense.score.fill_(-9.0)
        dense.score[0, 0, 3, 4] = 3.0
    cands = net.decode(dense)
    out = net.sparse(dense, cands)
    assert cands.valid.tolist() == [[True, False, False, False]]
    assert torch.equal(out.keypoints[0, 0], cands.keypoints[0, 0])
    assert (out.keypoints[0, 1:] == 0).all() and (out.keypoint_scores[0, 1:] == 0).all()
    assert (out.score_logits[0, 1:] == 0).all() and ((out.keypoint_scores[0, 0] > 0)).all()


def test_pose_code_is_invariant_to_scale_and_translation_except_log_scale():
    kp = torch.randn(1, 3, K, 2) * 5
    peak = torch.randn(1, 3, 2)
    a = PQE.pose_code(kp, peak)
    b = PQE.pose_code(kp * 3 + 7, peak * 3 + 7)
    assert a.shape == (1, 3, 2 * K + 3)
    torch.testing.assert_close(torch.cat([a[..., :2 * K], a[..., -2:]], -1),
                               torch.cat([b[..., :2 * K], b[..., -2:]], -1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b[..., 2 * K] - a[..., 2 * K], torch.full((1, 3), float(torch.log(torch.tensor(3.)))))


def test_fourier_features():
    u = torch.tensor([[0.25, -0.5]])
    f = fourier_features(u, 2)
    assert f.shape == (1, 2 + 8)
    torch.testing.assert_close(f[0, :2], u[0])
    torch.testing.assert_close(f[0, 2:6], torch.sin(torch.tensor([0.25, 0.5, -0.5, -1.0]) * torch.pi))


def test_pose_scores_are_the_pqe_sigmoid_or_the_mean_keypoint_score():
    kpt = torch.tensor([[[0.0] * 9 + [1.0] * 8, [0.9] * 17]])           # means 8/17 and 0.9
    out = SparseOutput(keypoints=torch.zeros(1, 2, K, 2), keypoint_scores=kpt,
                       score_logits=torch.tensor([[2.0, 0.0]]), keypoint_logits=torch.zeros(1, 2, K))
    torch.testing.assert_close(pose_scores(out), torch.tensor([[1 / (1 + torch.e ** -2.0), 0.5]]))
    torch.testing.assert_close(pose_scores(out, "keypoint_mean"), torch.tensor([[8 / 17, 0.9]]))
    with pytest.raises(ValueError, match="unknown pose score 'oks'"):
        pose_scores(out, "oks")
    with pytest.raises(ValueError, match="needs a model with the labelled head"):
        pose_scores(out, "labelled_mean")


def test_labelled_mean_weights_keypoint_scores_by_the_labelled_probability():
    kpt = torch.tensor([[[0.2] * 5 + [0.9] * 12, [0.6] * 17]])
    labelled = torch.tensor([[[-30.0] * 5 + [30.0] * 12, [0.0] * 17]])  # face surely unlabelled; all p = 0.5
    out = SparseOutput(keypoints=torch.zeros(1, 2, K, 2), keypoint_scores=kpt, score_logits=torch.zeros(1, 2),
                       keypoint_logits=torch.zeros(1, 2, K), labelled_logits=labelled)
    torch.testing.assert_close(pose_scores(out, "labelled_mean"), torch.tensor([[0.9, 0.6]]))
    torch.testing.assert_close(pose_scores(out, "keypoint_mean"), torch.tensor([[(1.0 + 10.8) / 17, 0.6]]))


@pytest.mark.parametrize("use_kqe", [True, False])
def test_labelled_head_gives_a_logit_per_keypoint_and_zeros_in_unused_slots(use_kqe):
    torch.manual_seed(0)
    net = build_model("tiny", input_size=64, labelled_head=True, use_kqe=use_kqe).eval()
    with torch.no_grad():
        cands, out = net.infer(torch.randn(2, 3, 64, 64), "torch")
    assert out.labelled_logits.shape == out.keypoint_logits.shape
    assert torch.all(out.labelled_logits[~cands.valid] == 0)
    plain = build_model("tiny", input_size=64).eval()
    assert plain.infer(torch.randn(1, 3, 64, 64), "torch")[1].labelled_logits is None
    with pytest.raises(ValueError, match="needs a model with the labelled head"):
        build_model("tiny", pose_score="labelled_mean")
