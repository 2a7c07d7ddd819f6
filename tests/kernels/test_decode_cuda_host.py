"""The CUDA C decode (kernels/decode.cu, the source CuPy compiles) run on the CPU through a small emulation
header, against the reference: its peak search, buffer compaction, bitonic sort and gathers, without a GPU."""
import pytest
import torch

from tests.kernels.cuda_host import build, decode_host
from tests.kernels.helpers import assert_candidates_match, random_inputs


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    try:
        return build(tmp_path_factory.mktemp("cuda_host"))
    except RuntimeError as exc:
        pytest.skip(f"cannot build the emulated CUDA decode: {exc}")


@pytest.mark.parametrize("h, w, batch, people, nms", [
    (1, 1, 1, 2, 3), (1, 13, 2, 4, 3), (11, 3, 1, 9, 1), (13, 29, 2, 7, 5), (33, 40, 1, 300, 3),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_random_maps_match_the_reference(library, h, w, batch, people, nms, dtype):
    inputs = random_inputs(batch, h, w, num_kpts=2, ck=5, ci=3, seed=h * 100 + w, dtype=dtype)
    out = decode_host(library, *inputs, max_people=people, threshold=0.3, nms_kernel=nms)
    assert_candidates_match(out, inputs, max_people=people, threshold=0.3, nms_kernel=nms)


@pytest.mark.parametrize("people", [1, 20, 1024])
def test_dense_map_overflows_the_buffer_and_is_cut_to_n(library, people):
    # 64x64 with every pixel over the threshold a peak: ~2000 candidates through a 2048-key buffer.
    inputs = random_inputs(1, 64, 64, num_kpts=1, ck=2, ci=2, seed=people, quantum=2.0**-10)
    out = decode_host(library, *inputs, max_people=people, threshold=0.2, nms_kernel=1)
    assert_candidates_match(out, inputs, max_people=people, threshold=0.2, nms_kernel=1)


def test_mixed_precision_and_plateau(library):
    score, offsets, kfeat, ifeat = random_inputs(2, 9, 30, seed=5)
    score[0, 0, 2:5, 3:9] = 9.0  # a plateau of 18 equal peaks
    inputs = (score.half(), offsets.half(), kfeat, ifeat)
    out = decode_host(library, *inputs, max_people=25, threshold=0.5)
    assert_candidates_match(out, inputs, max_people=25, threshold=0.5)
    assert out.indices[0, :18].tolist() == [y * 30 + x for y in range(2, 5) for x in range(3, 9)]


def test_nan_and_negative_zero(library):
    score, offsets, kfeat, ifeat = random_inputs(1, 6, 20, seed=6)
    score.fill_(-5.0)
    score[0, 0, 1, 1], score[0, 0, 1, 2] = float("nan"), 3.0
    score[0, 0, 4, 10], score[0, 0, 4, 15] = -0.0, 0.0
    inputs = (score, offsets, kfeat, ifeat)
    out = decode_host(library, *inputs, max_people=4, threshold=0.25)
    assert_candidates_match(out, inputs, max_people=4, threshold=0.25)
    assert out.indices.tolist() == [[4 * 20 + 10, 4 * 20 + 15, -1, -1]]


def test_nan_offsets_sample_at_zero(library):
    score, offsets, kfeat, ifeat = random_inputs(1, 5, 6, seed=7)
    score.fill_(-5.0)
    score[0, 0, 2, 3] = 1.0
    offsets[0, :, 2, 3] = torch.tensor([float("nan"), 1.0, 0.5, float("nan")])
    inputs = (score, offsets, kfeat, ifeat)
    out = decode_host(library, *inputs, max_people=1, threshold=0.5)
    assert_candidates_match(out, inputs, max_people=1, threshold=0.5)
