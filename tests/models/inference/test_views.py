"""Test-time views: which views run, shifted canvases crop back onto the plain grid, and the shift test keeps the
bundled model's poses in place."""
import numpy as np
import pytest
import torch

from models import DEFAULT_CHECKPOINT, Predictor
from models.modeling.network import DenseOutput
from models.preprocess import PAD_VALUE, normalize
from models.data.synth import PRESETS, make_scene, split_rng
from models.inference.views import SHIFT_MARGIN, View, crop_to_plain, view_batch, views_for


def test_views_run_plain_first_then_each_shift_and_each_mirror():
    assert views_for(False) == [View()]
    assert views_for(True) == [View(), View(0, True)]
    assert views_for(True, (16, 8)) == [View(), View(0, True), View(16), View(16, True), View(8), View(8, True)]
    assert views_for(False, (32,)) == [View(), View(32)]


@pytest.mark.parametrize("shifts", [(6,), (0,), (36,), (8, 8), (-4,)])
def test_bad_shifts_are_refused(shifts):
    with pytest.raises(ValueError, match="shifts must be distinct multiples of 4 in 4..32"):
        views_for(True, shifts)


def test_a_shifted_view_places_the_batch_and_crops_back_onto_the_plain_grid():
    batch = torch.randn(2, 3, 64, 64)
    canvas = view_batch(batch, View(8))
    assert canvas.shape == (2, 3, 64 + SHIFT_MARGIN, 64 + SHIFT_MARGIN)
    assert torch.equal(canvas[:, :, 8:72, 8:72], batch)
    gray = normalize(torch.full((1, 1, 1, 3), PAD_VALUE, dtype=torch.uint8))[0, :, 0, 0]
    torch.testing.assert_close(canvas[0, :, 0, 0], gray)
    torch.testing.assert_close(canvas[1, :, 90, 40], gray)
    assert torch.equal(view_batch(batch, View(0, True)), batch.flip(3))
    assert torch.equal(view_batch(batch, View(4, True))[:, :, 4:68, 4:68], batch.flip(3))
    # Maps of the 96 px canvas at stride 4 are 24x24; value 100 * y + x names map pixel (y, x) of the plain grid.
    y, x = torch.meshgrid(torch.arange(24) - 2, torch.arange(24) - 2, indexing="ij")
    names = (100 * y + x).float()[None, None]
    dense = DenseOutput(names, names.expand(1, 34, 24, 24), names.expand(1, 8, 24, 24), names, None)
    cropped = crop_to_plain(dense, View(8), (16, 16))
    expected = (100 * torch.arange(16)[:, None] + torch.arange(16)).float()
    assert cropped.heatmaps is None
    for t in (cropped.score, cropped.offsets, cropped.kfeat, cropped.ifeat):
        assert t.shape[-2:] == (16, 16) and torch.equal(t[0, -1], expected)


@pytest.mark.slow
def test_the_shift_test_keeps_the_bundled_models_poses_in_place():
    """Each view must land on the plain grid: cropping a 16 px shift one map pixel off moves the poses of this scene
    by 1.3 px (median); aligned views move them by about 0.1 px."""
    image, anns, *_ = make_scene(split_rng(5, "val", 0), PRESETS["easy"])
    flip = Predictor(DEFAULT_CHECKPOINT, flip_test=True).predict([image])[0]
    shifted = Predictor(DEFAULT_CHECKPOINT, flip_test=True, shift_test=(16,)).predict([image])[0]
    people = flip.keypoints[flip.scores > 0.5]
    assert len(people) == len(anns) == 4
    nearest = np.abs(people[:, None] - shifted.keypoints[None]).mean((2, 3)).argmin(1)
    assert 0.01 < np.median(np.abs(people - shifted.keypoints[nearest])) < 0.5  # moved, but not off the grid
