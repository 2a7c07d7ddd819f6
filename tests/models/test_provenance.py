"""Checkpoint meta: where a file came from (recipe, commit, data), kept through averaging and growth, rewritten
without touching the weights, and absent from older files without harm."""
import pytest
import torch

from models import DEFAULT_CHECKPOINT, build_model, load_checkpoint, save_checkpoint
from models.checkpoint import checkpoint_meta, rewrite_meta
from models.provenance import combine, git_commit, inherited_data, synthetic_only
from models.training.average import write_average
from models.training.grow import write_grown


def _net(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("tiny", input_size=64).eval()


def test_files_without_meta_read_as_before(tmp_path):
    path = save_checkpoint(tmp_path / "old.pt", _net())
    assert "meta" not in torch.load(path, weights_only=True) and checkpoint_meta(path) == {}
    assert inherited_data(path, None) == ""


def test_meta_round_trips_and_takes_strings_only(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _net(), meta={"data": "synthetic", "commit": "abc", "recipe": ""})
    assert checkpoint_meta(path) == {"data": "synthetic", "commit": "abc"}  # empty values are left out
    with pytest.raises(ValueError, match="strings only"):
        save_checkpoint(tmp_path / "b.pt", _net(), meta={"epoch": 3})


def test_rewrite_meta_keeps_every_tensor_bit_for_bit(tmp_path):
    src = save_checkpoint(tmp_path / "a.pt", _net(), extra={"epoch": 2}, meta={"data": "synthetic"})
    out = rewrite_meta(src, {"recipe": "r", "commit": "c"}, out=tmp_path / "b.pt")
    before, after = torch.load(src, weights_only=True), torch.load(out, weights_only=True)
    assert after["meta"] == {"data": "synthetic", "recipe": "r", "commit": "c"}
    assert before["extra"] == after["extra"] and before["config"] == after["config"]
    assert list(before["state_dict"]) == list(after["state_dict"])
    for key, tensor in before["state_dict"].items():
        assert tensor.dtype == after["state_dict"][key].dtype
        assert tensor.numpy().tobytes() == after["state_dict"][key].numpy().tobytes(), key
    load_checkpoint(out)


def test_data_labels_of_a_chain_are_kept_in_order_once():
    assert combine("synthetic", "coco-format: a.json") == "synthetic + coco-format: a.json"
    assert combine("synthetic + coco-format: a.json", "synthetic", None, "") == "synthetic + coco-format: a.json"
    assert synthetic_only({"data": "synthetic"}) and not synthetic_only({"data": "synthetic + coco-format: a.json"})
    assert not synthetic_only({})


def test_average_and_grow_keep_the_data_of_their_inputs(tmp_path):
    a = save_checkpoint(tmp_path / "a.pt", _net(1), meta={"data": "synthetic"})
    b = save_checkpoint(tmp_path / "b.pt", _net(2), meta={"data": "coco-format: train.json"})
    assert checkpoint_meta(write_average([a, b], tmp_path / "ab.pt"))["data"] == "synthetic + coco-format: train.json"
    write_grown(a, tmp_path / "g.pt", encoder_blocks=2)
    meta = checkpoint_meta(tmp_path / "g.pt")
    assert meta["data"] == "synthetic" and meta["commit"] == git_commit()


def test_git_commit_names_this_checkout_or_says_unknown(tmp_path):
    commit = git_commit()
    assert commit == "unknown" or len(commit.split("+")[0]) == 40
    assert git_commit(tmp_path) == "unknown"  # not a git checkout


def test_bundled_checkpoint_records_its_recipe_commit_and_synthetic_data():
    meta = checkpoint_meta(DEFAULT_CHECKPOINT)
    assert meta == {"recipe": "tiny_synth", "commit": "a9f67bf73a8068b764fd5b3a154edc22d408c2ac", "data": "synthetic"}
    assert torch.load(DEFAULT_CHECKPOINT, weights_only=True)["format"] == "qem-pose-checkpoint"
