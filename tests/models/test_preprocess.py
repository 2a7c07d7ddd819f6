"""Letterbox geometry: where a pixel lands in the canvas is where ``to_input`` says, both ways, any size."""
import numpy as np
import pytest
import torch

from models.preprocess import Letterbox, letterbox, normalize


def _centroid(channel: np.ndarray) -> tuple[float, float]:
    w = channel.astype(np.float64)
    yy, xx = np.mgrid[0:w.shape[0], 0:w.shape[1]]
    return (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()


@pytest.mark.parametrize("shape, size", [((40, 60), 256), ((359, 641), 128), ((300, 200), 96)])
def test_a_blob_lands_where_to_input_maps_its_centre(shape, size):
    image = np.zeros((*shape, 3), np.uint8)
    cx, cy, r = shape[1] * 0.45, shape[0] * 0.5, min(shape) / 10
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    image[..., 0] = (255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))).astype(np.uint8)
    canvas, box = letterbox(image, size)
    want = box.to_input(np.array([_centroid(image[..., 0])]))[0]  # the drawn blob's own centre, after rounding
    got = _centroid(np.where(canvas[..., 1] == 0, canvas[..., 0], 0))  # the gray padding has green 114
    # The old mapping (no half-pixel term) is off by |scale - 1| / 2: 1.6 px at 4.3x, 0.4 px at 0.2x.
    assert got == pytest.approx(tuple(want), abs=0.1)


def test_to_image_inverts_to_input_and_matches_the_matrix():
    box = Letterbox.fit(359, 641, 320)
    pts = np.array([[0.0, 0.0, 2.0], [640.0, 358.0, 1.0], [12.5, 300.25, 0.0]], np.float32)
    np.testing.assert_allclose(box.to_image(box.to_input(pts)), pts, atol=1e-3)
    np.testing.assert_allclose(box.to_input(pts)[:, :2], pts[:, :2] @ box.matrix()[:, :2].T + box.matrix()[:, 2],
                               atol=1e-4)
    assert (box.to_input(pts)[:, 2] == pts[:, 2]).all()  # extra columns untouched


def test_a_one_pixel_high_image_still_letterboxes():
    canvas, box = letterbox(np.zeros((1, 641, 3), np.uint8), 64)
    assert canvas.shape == (64, 64, 3) and box.content_size(1, 641) == (64, 1)


def test_normalize_is_imagenet_rgb():
    x = normalize(torch.full((2, 3, 3), 255, dtype=torch.uint8))
    assert x.shape == (1, 3, 2, 3)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                             (1 - 0.406) / 0.225]))
