"""Letterbox geometry: where a pixel lands in the canvas is where ``to_input`` says, both ways, any size."""
import numpy as np
import pytest
import torch

from models.preprocess import Letterbox, batch_canvas, letterbox, normalize, rect_canvas


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


@pytest.mark.parametrize("shape, size, want", [
    ((360, 640), 320, (320, 192)),   # the bundled clip: content 320x180, rounded up to 192
    ((640, 360), 320, (192, 320)),   # portrait
    ((480, 640), 320, (320, 256)),   # 320x240 -> 256
    ((256, 256), 320, (320, 320)),   # square stays square
    ((1, 641), 64, (64, 32)),        # content 64x1 still gets one row of 32
])
def test_rect_canvas_is_the_smallest_multiple_of_32_holding_the_content(shape, size, want):
    assert rect_canvas(*shape, size) == want
    canvas, box = letterbox(np.zeros((*shape, 3), np.uint8), size, want)
    assert canvas.shape == (want[1], want[0], 3) and (box.width, box.height) == want


def test_rect_letterbox_centres_the_content_and_maps_points_like_the_square_one_shifted():
    image = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    square, sq = letterbox(image, 320)
    rect, rb = letterbox(image, 320, rect_canvas(360, 640, 320))
    assert (rb.pad_x, rb.pad_y) == (0, 6) and (sq.pad_x, sq.pad_y) == (0, 70)
    np.testing.assert_array_equal(rect[6:186], square[70:250])  # the same content, only the padding differs
    assert (rect[:6] == 114).all() and (rect[186:] == 114).all()
    pts = np.array([[0.0, 0.0], [639.0, 359.0], [100.5, 200.25]], np.float32)
    np.testing.assert_allclose(rb.to_input(pts), sq.to_input(pts) - [0, 64], atol=1e-4)
    np.testing.assert_allclose(rb.to_image(rb.to_input(pts)), pts, atol=1e-3)


def test_a_batch_of_other_shapes_shares_the_largest_canvas_and_each_is_centred():
    shapes = [(360, 640, 3), (640, 360, 3), (300, 300, 3)]
    assert batch_canvas(shapes, 320, rect=False) == (320, 320)
    assert batch_canvas(shapes, 320, rect=True) == (320, 320)
    assert batch_canvas(shapes[:1] * 2, 320, rect=True) == (320, 192)
    box = Letterbox.fit(360, 640, 320, (320, 256))
    assert (box.pad_x, box.pad_y) == (0, 38)
    with pytest.raises(ValueError, match="cannot hold"):
        Letterbox.fit(360, 640, 320, (320, 160))
