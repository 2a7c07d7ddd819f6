"""Target assignment on hand-made people: square window, smaller person wins, unusable people ignored."""
import torch

from models.keypoints import NUM_KEYPOINTS
from models.data.persons import Persons
from models.training.targets import build_targets, keypoint_heatmaps

K = NUM_KEYPOINTS


def person_at(x: float, y: float, v: float = 2.0) -> torch.Tensor:
    """All keypoints at one input-pixel point: the centre is exactly that point."""
    kp = torch.zeros(K, 3)
    kp[:, 0], kp[:, 1], kp[:, 2] = x, y, v
    return kp


def test_overlap_smaller_wins_radius_respected_invisible_ignored():
    # Input 128 -> map 32. Input px 41.5 -> feature px 10 (x_f = (x - 1.5) / 4).
    big = person_at(41.5, 41.5)           # centre (10, 10), area 4000
    small = person_at(49.5, 41.5)         # centre (12, 10), area 900
    hidden = person_at(100.0, 100.0, v=0)  # no labelled keypoint
    persons = Persons(torch.stack([big, small, hidden]), torch.tensor([4000.0, 900.0, 50.0]))
    t = build_targets([persons], (32, 32), (128, 128), K, radius=2, sigma=2.0)
    owner = t.owner[0]
    expected = torch.full((32, 32), -1)
    expected[8:13, 8:13] = 0   # big: x, y in 10 +- 2
    expected[8:13, 10:15] = 1  # small: x in 12 +- 2 wins the overlap x = 10..12
    assert torch.equal(owner, expected)
    assert t.valid[0].tolist() == [True, True, False]
    assert torch.allclose(t.centres[0, :2], torch.tensor([[10.0, 10.0], [12.0, 10.0]]))
    assert torch.allclose(t.areas[0], torch.tensor([4000.0, 900.0, 50.0]) / 16)


def test_equal_areas_go_to_the_lower_index_and_fractional_centres_use_the_square_window():
    a = person_at(41.5 + 2.0, 41.5)  # centre x = 10.5
    b = person_at(41.5 + 2.0, 41.5)
    t = build_targets([Persons(torch.stack([a, b]), torch.tensor([100.0, 100.0]))], (32, 32), (128, 128), K,
                      radius=1.5, sigma=2.0)
    cols = (t.owner[0] == 0).any(0).nonzero().flatten().tolist()
    rows = (t.owner[0] == 0).any(1).nonzero().flatten().tolist()
    assert cols == [9, 10, 11, 12] and rows == [9, 10, 11]
    assert not (t.owner[0] == 1).any()


def test_keypoints_out_of_image_and_unlabelled_do_not_count():
    kp = person_at(41.5, 41.5)
    kp[0, :2] = torch.tensor([-5.0, 20.0])   # left of the image: dropped
    kp[1, :2] = torch.tensor([20.0, 128.0])  # y == H: outside
    kp[2, 2] = 0                             # not labelled
    t = build_targets([Persons(kp[None], torch.tensor([1000.0]))], (32, 32), (128, 128), K, 2, 2.0)
    v = t.keypoints[0, 0, :, 2]
    assert v[:3].tolist() == [0, 0, 0] and (v[3:] == 2).all()
    assert torch.allclose(t.centres[0, 0], torch.tensor([10.0, 10.0]))  # the dropped points don't move it
    everything_out = person_at(200.0, 50.0)
    t2 = build_targets([Persons(everything_out[None], torch.tensor([1000.0]))], (32, 32), (128, 128), K, 2, 2.0)
    assert not t2.valid.any() and (t2.owner == -1).all() and t2.heatmap.max() == 0


def test_batch_padding_and_empty_images():
    one = Persons(person_at(41.5, 41.5)[None], torch.tensor([1000.0]))
    empty = Persons(torch.zeros(0, K, 3), torch.zeros(0))
    t = build_targets([one, empty], (32, 32), (128, 128), K, 2, 2.0)
    assert t.keypoints.shape == (2, 1, K, 3) and t.owner.shape == (2, 32, 32)
    assert (t.owner[1] == -1).all() and (t.owner[0] == 0).sum() == 25
    assert t.heatmap[0, 10, 10] == 1.0 and torch.isclose(t.heatmap[0, 10, 12], torch.exp(torch.tensor(-0.5)))


def test_keypoint_heatmaps_are_gaussians_per_keypoint_type_over_labelled_keypoints():
    kps = torch.zeros(1, 2, K, 3)
    kps[0, 0, 3] = torch.tensor([10.0, 5.0, 2.0])   # person 0: keypoint 3 at pixel (x=10, y=5)
    kps[0, 1, 3] = torch.tensor([12.0, 5.0, 1.0])   # person 1: keypoint 3 two pixels right (occluded counts)
    kps[0, 1, 4] = torch.tensor([2.0, 2.0, 0.0])    # not labelled
    t = keypoint_heatmaps(kps, (8, 16), sigma=1.0)
    assert t.shape == (1, K, 8, 16)
    assert t[0, 3, 5, 10] == 1.0 and t[0, 3, 5, 12] == 1.0
    assert torch.isclose(t[0, 3, 5, 11], torch.exp(torch.tensor(-0.5)))   # max of both people, not their sum
    assert torch.isclose(t[0, 3, 6, 10], torch.exp(torch.tensor(-0.5)))
    others = torch.ones(K, dtype=torch.bool)
    others[3] = False
    assert t[0, others].abs().max() == 0
