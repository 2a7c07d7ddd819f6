"""All three backends on CUDA against the reference, and the decode captured in a CUDA graph (skipped without CUDA)."""
import pytest
import torch

import kernels
from tests.kernels.helpers import assert_candidates_match, random_inputs

pytestmark = pytest.mark.gpu


def fused(backend):
    if backend == "cupy":
        pytest.importorskip("cupy", reason="the cupy backend needs cupy-cuda13x")
    return backend


@pytest.mark.parametrize("backend", ["torch", "triton", "cupy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("h, w, batch, people, nms", [
    (1, 1, 1, 2, 3), (33, 40, 2, 7, 5), (64, 64, 1, 20, 3), (97, 130, 4, 100, 3), (128, 128, 16, 50, 1),
    (256, 256, 2, 1024, 1),
])
def test_backend_matches_the_reference_on_cuda(backend, dtype, h, w, batch, people, nms):
    inputs = random_inputs(batch, h, w, num_kpts=17, ck=8, ci=16, seed=h + w + batch, dtype=dtype, device="cuda")
    out = kernels.decode(*inputs, max_people=people, threshold=0.3, nms_kernel=nms, backend=fused(backend))
    assert_candidates_match(out, inputs, max_people=people, threshold=0.3, nms_kernel=nms)


def test_auto_picks_a_fused_backend_for_cuda_tensors():
    inputs = random_inputs(1, 20, 20, seed=0, device="cuda")
    out = kernels.decode(*inputs, max_people=5, threshold=0.3)
    assert out.scores.is_cuda
    assert_candidates_match(out, inputs, max_people=5, threshold=0.3)


@pytest.mark.parametrize("backend", ["triton", "cupy"])
def test_decode_captured_in_a_cuda_graph_replays_on_new_inputs(backend):
    args = {"max_people": 20, "threshold": 0.3, "nms_kernel": 3}
    static = [t.clone() for t in random_inputs(2, 48, 64, num_kpts=17, ck=8, seed=1, device="cuda")]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # compile and warm up outside the capture
        for _ in range(2):
            kernels.decode(*static, backend=fused(backend), **args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = kernels.decode(*static, backend=backend, **args)
    for seed in (2, 3):
        fresh = random_inputs(2, 48, 64, num_kpts=17, ck=8, seed=seed, device="cuda")
        for dst, src in zip(static, fresh):
            dst.copy_(src)
        graph.replay()
        torch.cuda.synchronize()
        assert_candidates_match(out, fresh, **args)


def test_cupy_runs_on_the_current_torch_stream():
    fused("cupy")
    inputs = random_inputs(1, 40, 40, seed=7, device="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = kernels.decode(*inputs, max_people=10, threshold=0.3, backend="cupy")
    stream.synchronize()
    assert_candidates_match(out, inputs, max_people=10, threshold=0.3)


@pytest.mark.parametrize("backend", ["torch", "triton", "cupy"])
def test_no_backend_synchronises_with_the_host(backend):
    inputs = random_inputs(2, 40, 56, seed=8, device="cuda")
    kernels.decode(*inputs, max_people=10, threshold=0.3, backend=fused(backend))  # compile outside the check
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        kernels.decode(*inputs, max_people=10, threshold=0.3, backend=backend)
    finally:
        torch.cuda.set_sync_debug_mode("default")
