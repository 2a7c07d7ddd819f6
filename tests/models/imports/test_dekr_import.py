"""``qem import dekr``: both published layouts load strictly into DEKR's network, agree with each other, keep DEKR's
offset sign, say where they came from, and refuse what is not DEKR's weights in one line."""
from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import re
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import checkpoint_meta, load_checkpoint
from models.imports import cli
from models.imports.dekr import DekrImportError, import_dekr
from models.imports.fetch import FetchError, fetch
from tests.cli import assert_one_error_line, run_module
from tests.models.imports.dekr_layouts import fixture, random_state, to_mmpose

X = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def release_coco(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dekr") / "pose_dekr_hrnetw32_coco.pth"
    torch.save(random_state("dekr_release_w32_coco", seed=1), path)
    return path


@pytest.fixture(scope="module")
def imported_coco(release_coco, tmp_path_factory) -> Path:
    return import_dekr(release_coco, tmp_path_factory.mktemp("out") / "dekr_w32_coco.pt")


def dense_maps(checkpoint: Path) -> tuple[torch.Tensor, ...]:
    net = load_checkpoint(checkpoint)
    with torch.no_grad():
        d = net.dense(X)
    return d.score, d.offsets, d.kfeat, d.ifeat, d.heatmaps


@pytest.mark.parametrize("data,keypoints", [("coco", 17), ("crowdpose", 14)])
def test_release_layout_with_dekrs_exact_names_loads_strictly(tmp_path, data, keypoints):
    src = tmp_path / f"pose_dekr_hrnetw32_{data}.pth"
    state = random_state(f"dekr_release_w32_{data}", seed=2)
    torch.save({f"module.{k}": v for k, v in state.items()}, src)  # as saved from DataParallel
    net = load_checkpoint(import_dekr(src, data=data))
    assert net.cfg.head == "dekr" and net.cfg.num_keypoints == keypoints
    assert (tmp_path / f"dekr_w32_{data}.pt").is_file()  # the default name, beside the input
    # every weight of the file went somewhere: the converted network holds exactly as many numbers (the fixed
    # tap grids and the per-keypoint batch counters aside)
    def numbers(tensors):
        return sum(v.numel() for k, v in tensors.items() if not k.endswith(("regular_matrix", "num_batches_tracked")))
    assert numbers(net.state_dict()) == numbers(state)


def test_mmpose_layout_matches_the_fixture_and_gives_the_release_maps(release_coco, imported_coco, tmp_path):
    mmpose = to_mmpose(torch.load(release_coco, weights_only=True), 17)
    assert {k: list(v.shape) for k, v in mmpose.items()} == fixture("dekr_mmpose_w32_coco")
    src = tmp_path / "dekr_hrnet-w32_8xb10-140e_coco-512x512_ac7c17bf-20221228.pth"
    meta = {"dataset_meta": {"sigmas": np.full(17, 0.05), "flip_indices": list(range(17))}, "epoch": 140}
    torch.save({"meta": meta, "state_dict": mmpose}, src)  # MMPose keeps NumPy arrays in its metadata
    converted = import_dekr(src, tmp_path / "mm.pt")
    assert checkpoint_meta(converted)["layout"] == "mmpose"
    for ours, theirs in zip(dense_maps(imported_coco), dense_maps(converted)):
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-5), (ours - theirs).abs().max()


def test_offsets_keep_dekrs_sign_keypoint_is_pixel_minus_offset(tmp_path):
    state = random_state("dekr_release_w32_coco", seed=4)
    for j in range(17):
        state[f"offset_final_layer.{j}.weight"].zero_()
        state[f"offset_final_layer.{j}.bias"].copy_(torch.tensor([3.0, -2.0]))  # DEKR's (x, y) offset
    state["head_heatmap.1.weight"].zero_()
    state["head_heatmap.1.bias"].fill_(0.0)
    state["head_heatmap.1.bias"][17] = 0.5  # a flat centre map: every pixel is a peak
    torch.save(state, tmp_path / "w.pth")
    net = load_checkpoint(import_dekr(tmp_path / "w.pth"))
    cands, _ = net.infer(X, "torch")
    w = X.shape[-1] // 4
    pixel = torch.stack([cands.indices % w, cands.indices // w], -1).float()
    assert cands.valid.all()
    expected = (pixel - torch.tensor([3.0, -2.0])).unsqueeze(2).expand_as(cands.keypoints)
    assert torch.equal(cands.keypoints, expected)


def test_checkpoint_says_where_the_weights_came_from(release_coco, imported_coco):
    meta = checkpoint_meta(imported_coco)
    assert meta["data"] == "coco" and meta["layout"] == "release" and meta["source"] == release_coco.name
    assert meta["sha256"] == hashlib.sha256(release_coco.read_bytes()).hexdigest()
    assert "MIT" in meta["licence"] and meta["model"] == "DEKR HRNet-W32 (coco)"
    from realtime.provenance import model_line, synthetic_captions
    from realtime.sources.readers import SourceSpec

    assert synthetic_captions(str(imported_coco), [SourceSpec(kind="camera", uri="0")]) == {}
    assert "DEKR HRNet-W32 (coco)" in model_line(str(imported_coco))


def test_rescoring_net_is_kept_and_must_fit_the_data(release_coco, tmp_path):
    gen = torch.Generator().manual_seed(5)
    coco = {"l1.weight": torch.randn(256, 74, generator=gen) * 0.1, "l1.bias": torch.zeros(256),
            "l2.weight": torch.randn(256, 256, generator=gen) * 0.1, "l2.bias": torch.zeros(256),
            "l3.weight": torch.randn(1, 256, generator=gen) * 0.1, "l3.bias": torch.full((1,), 0.5)}
    torch.save(coco, tmp_path / "final_rescore_coco_kpt.pth")
    net = load_checkpoint(import_dekr(release_coco, tmp_path / "r.pt", rescore=tmp_path / "final_rescore_coco_kpt.pth"))
    assert net.cfg.rescore and torch.equal(net.qem.rescore.l3.bias, coco["l3.bias"])
    crowd = dict(coco, **{"l1.weight": torch.randn(256, 59)})
    torch.save(crowd, tmp_path / "final_rescore_crowd_pose_kpt.pth")
    with pytest.raises(DekrImportError, match="CrowdPose poses, not for this coco model"):
        import_dekr(release_coco, tmp_path / "r2.pt", rescore=tmp_path / "final_rescore_crowd_pose_kpt.pth")


class Foreign:  # stands for a pickled model object, as a YOLO .pt holds
    pass


@pytest.mark.parametrize("case,words", [
    ("yolo", "holds Python objects"),
    ("imagenet", "an HRNet ImageNet backbone without DEKR's heads"),
    ("other_head", "an MMPose checkpoint of another head (final_layer)"),
    ("truncated", "a zip archive (PyTorch's format) cut short at 100000 bytes"),
    ("crowdpose_as_coco", "has 14 keypoints (crowdpose's), not coco's"),
])
def test_bad_files_get_one_line_naming_the_file(tmp_path, release_coco, case, words):
    path = tmp_path / f"{case}.pt"
    data = None
    if case == "yolo":
        torch.save({"model": Foreign()}, path)
    elif case == "imagenet":
        torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3), "incre_modules.0.0.conv1.weight": torch.zeros(1),
                    "classifier.weight": torch.zeros(1000, 2048)}, path)
    elif case == "other_head":
        torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1), "head.final_layer.weight": torch.zeros(1)}},
                   path)
    elif case == "truncated":
        path.write_bytes(release_coco.read_bytes()[:100_000])
    else:
        torch.save(random_state("dekr_release_w32_crowdpose"), path)
        data = "coco"
    with pytest.raises(DekrImportError) as info:
        import_dekr(path, tmp_path / "out.pt", data=data)
    message = str(info.value)
    assert words in message and str(path) in message and "\n" not in message


def test_command_line_writes_the_checkpoint_and_fails_in_one_line(release_coco, tmp_path):
    proc = run_module("models", "import", "dekr", release_coco, "--out", tmp_path / "c.pt")
    assert proc.returncode == 0 and "DEKR HRNet-W32 (coco)" in proc.stdout, proc.stderr
    assert load_checkpoint(tmp_path / "c.pt").cfg.name == "dekr_w32"
    proc = run_module("models", "import", "dekr", tmp_path / "missing.pth")
    assert_one_error_line(proc, "missing.pth: file not found")


def zip_with_pickle(data_pkl: bytes) -> bytes:
    """A file in torch.save's zip format whose object pickle is ``data_pkl``."""
    saved = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, saved)
    out = io.BytesIO()
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, data_pkl if name.endswith("/data.pkl") else src.read(name))
    return out.getvalue()


def legacy_bytes() -> bytes:
    saved = io.BytesIO()
    torch.save({"w": torch.zeros(10_000)}, saved, _use_new_zipfile_serialization=False)
    return saved.getvalue()


@pytest.mark.parametrize("content,words", [
    (b"hello world this is not a checkpoint\n", "not a PyTorch file (it starts with b'hello world this')"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64), "not a PyTorch file (an MP4 or QuickTime video)"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "not a PyTorch file (an HTML page"),
    (b"", "an empty file (0 bytes)"),
    (legacy_bytes()[:1000], "a PyTorch file cut short at 1000 bytes"),
    (zip_with_pickle(pickle.dumps({"a": 1}, protocol=0)),
     "holds objects other than tensors, which are not loaded for safety"),
], ids=["text", "mp4", "html", "empty", "legacy_cut_short", "unsafe_pickle"])
def test_unreadable_files_say_what_they_look_like(tmp_path, content, words):
    path = tmp_path / "notackpt.pth"
    path.write_bytes(content)
    with pytest.raises(DekrImportError) as info:
        import_dekr(path, tmp_path / "out.pt")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message


def test_pytorchs_own_reason_is_its_first_sentence_whole(tmp_path):
    saved = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, saved)
    path = tmp_path / "future.pth"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():  # as if written by a far newer PyTorch
            dst.writestr(name, b"99\n" if name.endswith("/version") else src.read(name))
    with pytest.raises(DekrImportError) as info:
        import_dekr(path, tmp_path / "out.pt")
    # PyTorch's whole first sentence, without its C++ source location or the advice that follows
    assert re.fullmatch(rf"{re.escape(str(path))}: not a readable PyTorch weights file \(Attempted to read a PyTorch "
                        rf"file with version 99, but the maximum supported version for reading is \d+\)",
                        str(info.value)), str(info.value)


def test_a_folder_is_named_as_a_folder(release_coco, tmp_path):
    folder = tmp_path / "dekr"
    folder.mkdir()
    (folder / "pose_dekr_hrnetw32_coco.pth").write_bytes(b"")
    with pytest.raises(DekrImportError, match=r"dekr: is a folder; give the \.pth file \(it holds "
                                              r"pose_dekr_hrnetw32_coco\.pth\)$"):
        import_dekr(folder)
    with pytest.raises(DekrImportError, match="is a folder; give the .pth file"):
        import_dekr(release_coco, tmp_path / "o.pt", rescore=tmp_path)


def test_help_of_each_command_is_its_own_and_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    parent = capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["dekr", "--help"])
    dekr = capsys.readouterr().out
    assert "qem import: weights published by others" in parent and "dekr " in parent
    assert "qem import dekr: DEKR's published weights" in dekr and "--rescore" in dekr
    assert "weights published by others" not in dekr
    assert "``" not in parent + dekr


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        CountingHandler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served over HTTP on loopback (its base URL), with the download cache under ``tmp_path / "cache"``."""
    folder = tmp_path / "served"
    folder.mkdir()
    CountingHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("QEM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_is_downloaded_once_into_the_cache(release_coco, tmp_path, served):
    folder, base = served
    (folder / release_coco.name).write_bytes(release_coco.read_bytes())
    url = base.replace("http://", "http://user:secret@") + f"/{release_coco.name}"
    first, second = fetch(url), fetch(url)
    assert first == second and first.read_bytes() == release_coco.read_bytes()
    assert CountingHandler.requests == [f"/{release_coco.name}"]
    assert first.name == release_coco.name and first.parent.parent == tmp_path / "cache" / "downloads"
    assert "secret" not in str(first)
    with pytest.raises(FetchError) as info:
        fetch(base.replace("http://", "http://user:secret@") + "/absent.pth")
    assert "404" in str(info.value) and "secret" not in str(info.value)


def test_two_urls_with_one_file_name_are_cached_apart(served):
    folder, base = served
    for sub, text in (("a", b"first"), ("b", b"second")):
        (folder / sub).mkdir()
        (folder / sub / "w.pth").write_bytes(text)
    a, b = fetch(f"{base}/a/w.pth"), fetch(f"{base}/b/w.pth")
    assert a.name == b.name == "w.pth" and a != b
    assert (a.read_bytes(), b.read_bytes()) == (b"first", b"second")


def test_a_download_that_is_not_weights_is_dropped_and_fetched_again_once_fixed(release_coco, tmp_path, served,
                                                                                capsys):
    folder, base = served
    (folder / "notackpt.pth").write_text("hello, this is not a checkpoint\n")
    url = f"{base}/notackpt.pth"
    assert cli.main(["dekr", url, "--out", str(tmp_path / "c.pt")]) == 1
    err = capsys.readouterr().err
    # one line, and no progress bar left before it (the line is the whole of stderr)
    assert err == (f"error: {url}: not a PyTorch file (it starts with b'hello, this is n'); removed from the cache, so "
                   f"the next run downloads it again\n")
    assert not [p for p in (tmp_path / "cache" / "downloads").rglob("*") if p.is_file()]
    (folder / "notackpt.pth").write_bytes(release_coco.read_bytes())  # the server's file is fixed
    assert cli.main(["dekr", url, "--out", str(tmp_path / "c.pt")]) == 0, capsys.readouterr().err
    assert CountingHandler.requests == ["/notackpt.pth", "/notackpt.pth"]
    assert load_checkpoint(tmp_path / "c.pt").cfg.name == "dekr_w32"


def test_a_url_without_out_is_written_into_the_current_folder_not_the_cache(release_coco, tmp_path, served,
                                                                           monkeypatch, capsys):
    folder, base = served
    (folder / release_coco.name).write_bytes(release_coco.read_bytes())
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert cli.main(["dekr", f"{base}/{release_coco.name}"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"wrote {here / 'dekr_w32_coco.pt'}: ")
    assert load_checkpoint(here / "dekr_w32_coco.pt").cfg.name == "dekr_w32"
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_url_that_does_not_answer_is_one_line(tmp_path):
    import socket

    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with pytest.raises(FetchError, match="cannot download"):
            fetch(f"http://127.0.0.1:{silent.getsockname()[1]}/w.pth", tmp_path, timeout=1.0)
    finally:
        silent.close()
    assert not list(tmp_path.iterdir())  # no partial file left behind


def mmpose_rescore_scores(net: dict, keypoints, joint_scores, skeleton, norm_indexes):
    """MMPose's rescoring as its head computes it: features from its skeleton links (vectors and lengths over the
    mean length of links ``norm_indexes``, at least 1), then the joint scores, through the 3-layer MLP."""
    a, b = zip(*skeleton)
    rel = keypoints[:, list(a)] - keypoints[:, list(b)]
    length = rel.norm(dim=2)
    scale = ((length[:, norm_indexes[0]] + length[:, norm_indexes[1]]) / 2).clamp(min=1).unsqueeze(1)
    x = torch.cat([(rel / scale.unsqueeze(-1)).flatten(1), length / scale, joint_scores], dim=1)
    x = torch.relu(x @ net["l1.weight"].T + net["l1.bias"])
    x = torch.relu(x @ net["l2.weight"].T + net["l2.bias"])
    return (x @ net["l3.weight"].T + net["l3.bias"]).squeeze(1)


# MMPose's skeletons (its data sets' skeleton_info) and torso links (its DEKR configs' norm_indexes)
MMPOSE_COCO = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
               (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
MMPOSE_CROWDPOSE = ((10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5),
                    (12, 13), (1, 13), (0, 13))


@pytest.mark.parametrize("data,k,skeleton,norm", [("coco", 17, MMPOSE_COCO, (5, 6)),
                                                   ("crowdpose", 14, MMPOSE_CROWDPOSE, (0, 1))])
def test_mmposes_rescoring_net_imported_scores_as_mmpose_does(tmp_path, data, k, skeleton, norm):
    """An MMPose file's ``head.rescore_net`` (random weights), imported, gives the scores MMPose's own feature
    order gives, on random poses: the columns were permuted into DEKR's order, COCO's and CrowdPose's."""
    gen = torch.Generator().manual_seed(12)
    links = len(skeleton)
    net = {"l1.weight": torch.randn(256, 3 * links + k, generator=gen), "l1.bias": torch.randn(256, generator=gen),
           "l2.weight": torch.randn(256, 256, generator=gen) * 0.1, "l2.bias": torch.randn(256, generator=gen) * 0.1,
           "l3.weight": torch.randn(1, 256, generator=gen) * 0.1, "l3.bias": torch.randn(1, generator=gen)}
    mmpose = to_mmpose(random_state(f"dekr_release_w32_{data}", seed=3), k)
    mmpose.update({f"head.rescore_net.{n}": v for n, v in net.items()})
    torch.save({"state_dict": mmpose}, tmp_path / "mm.pth")
    ours = load_checkpoint(import_dekr(tmp_path / "mm.pth", tmp_path / "b.pt", data=data))
    assert ours.cfg.rescore
    pose, joint = torch.rand(6, k, 2, generator=gen) * 200, torch.rand(6, k, generator=gen)
    with torch.no_grad():
        want = mmpose_rescore_scores(net, pose, joint, skeleton, norm)
        assert torch.allclose(ours.qem.rescore(pose, joint), want, atol=1e-4)
