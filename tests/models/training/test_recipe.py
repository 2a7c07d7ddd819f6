"""Recipes: every stage of the bundled checkpoint's recipe runs at smoke scale to a loadable checkpoint, a second
call skips what is done, an interrupted stage continues from its last.pt, and bad input fails in one line before
anything trains."""
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.checkpoint import checkpoint_meta, load_checkpoint
from models.provenance import git_commit
from models.training.recipe import plan
from models.training.recipes import RECIPES, get_recipe
from models.training.recipes.runner import RunOptions, launcher
from models.training.recipes.stages import Average, Recipe, Synth, Train, flag_values
from tests.cli import assert_one_error_line, run_module

SMOKE = ("train", "--recipe", "tiny_synth", "--smoke", "--threads", "1", "--workers", "0")


def _lines(proc, word: str) -> list[str]:
    return [line.split(": ", 1)[0].split("] ")[1] for line in proc.stdout.splitlines() if line.endswith(word)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recipe") / "run"
    proc = run_module("models", *SMOKE, "--out", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"recipe tiny_synth: wrote {out / 'final.pt'}")
    return out


def _copy(smoke_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
    return out


@pytest.mark.slow
def test_smoke_run_reaches_the_end_and_writes_a_loadable_checkpoint(smoke_run):
    recipe = RECIPES["tiny_synth"]
    assert sorted(p.stem for p in (smoke_run / ".done").iterdir()) == sorted(s.name for s in recipe.stages)
    net = load_checkpoint(smoke_run / "final.pt")  # torch.load(weights_only=True)
    assert net.cfg.encoder_blocks == 2 and net.cfg.kpt_blocks == 4  # grown on the way
    assert net.cfg.labelled_head and net.cfg.pose_score == "labelled_mean"  # the head stages ran
    assert checkpoint_meta(smoke_run / "final.pt") == {"recipe": "tiny_synth", "commit": git_commit(),
                                                       "data": "synthetic", "scale": "smoke"}
    assert torch.load(smoke_run / "final.pt", weights_only=True)["extra"]["averaged"] == ["best.pt", "best.pt"]
    assert checkpoint_meta(smoke_run / "a" / "best.pt")["data"] == "synthetic"
    for stage in ("synth_train", "synth_dev", "synth_train12k"):  # data drawn by the recipe itself
        assert any((smoke_run / "data" / stage / "annotations").glob("person_keypoints_*.json"))


@pytest.mark.slow
def test_a_second_call_skips_every_finished_stage(smoke_run, tmp_path):
    out = _copy(smoke_run, tmp_path)
    stamp = (out / "x" / "best.pt").stat().st_mtime_ns
    proc = run_module("models", *SMOKE, "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(_lines(proc, "done before, skipped")) == len(RECIPES["tiny_synth"].stages)
    assert (out / "x" / "best.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_an_interrupted_stage_resumes_from_last_pt_and_later_stages_run_again(smoke_run, tmp_path):
    out = _copy(smoke_run, tmp_path)
    (out / ".done" / "d2.json").unlink()  # as if killed after its last.pt was saved, before the stage was recorded
    proc = run_module("models", *SMOKE, "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout and _lines(proc, "resumed") == ["d2"]
    assert _lines(proc, ": ran") == ["soup"]
    assert "c2h" in _lines(proc, "done before, skipped")
    assert (out / ".done" / "d2.json").is_file() and (out / "final.pt").is_file()


@pytest.mark.slow
def test_from_stage_redoes_that_stage_and_the_ones_after(smoke_run, tmp_path):
    out = _copy(smoke_run, tmp_path)
    proc = run_module("models", *SMOKE, "--out", out, "--from-stage", "c2h", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _lines(proc, ": ran") == ["c2h", "d2", "soup"] and not _lines(proc, "skipped")


@pytest.mark.slow
def test_a_folder_of_another_scale_is_refused_in_one_line(smoke_run, tmp_path):
    out = _copy(smoke_run, tmp_path)
    proc = run_module("models", "train", "--recipe", "tiny_synth", "--out", out, "--to-stage", "synth_train")
    assert_one_error_line(proc, "made by another recipe or scale")


def test_a_missing_data_folder_fails_before_any_training(tmp_path):
    proc = run_module("models", "train", "--recipe", "coco_hrnet_w32", "--data", tmp_path / "coco", "--pretrained",
                      "none", "--out", tmp_path / "run")
    assert_one_error_line(proc, f"data not found: {tmp_path / 'coco'}")
    assert not (tmp_path / "run").exists()


def test_hrnet_recipe_asks_for_imagenet_weights_before_training(tmp_path):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    for name in ("train2017", "val2017"):
        (tmp_path / "coco" / name).mkdir()
        (tmp_path / "coco" / "annotations" / f"person_keypoints_{name}.json").write_text("{}")
    proc = run_module("models", "train", "--recipe", "coco_hrnet_w32", "--data", tmp_path / "coco", "--out",
                      tmp_path / "run")
    assert_one_error_line(proc, "--pretrained FILE")
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_and_stage_are_one_line_each(tmp_path):
    assert_one_error_line(run_module("models", "train", "--recipe", "nope"), "tiny_synth, coco_hrnet_w32")
    proc = run_module("models", "train", "--recipe", "tiny_synth", "--out", tmp_path, "--from-stage", "zz")
    assert_one_error_line(proc, "--from-stage zz: recipe tiny_synth has no such stage")


def test_smoke_scale_keeps_the_stage_graph_and_model_switches():
    full, small = RECIPES["tiny_synth"], get_recipe("tiny_synth", smoke_scale=True)
    assert [(type(s), s.name, getattr(s, "init", None)) for s in full.stages] == \
        [(type(s), s.name, getattr(s, "init", None)) for s in small.stages]
    for a, b in zip(full.stages, small.stages):
        if isinstance(a, Train):
            for flag in ("--config", "--synth", "--val-synth", "--lr", "--amp", "--pose-score", "--encoder-blocks",
                         "--labelled-head", "--train-only"):
                assert flag_values(a.args, flag) == flag_values(b.args, flag), (a.name, flag)
            assert flag_values(b.args, "--epochs") == ["1"] and flag_values(b.args, "--max-steps") == ["2"]


def test_recipe_stages_must_start_from_earlier_products():
    with pytest.raises(ValueError, match="'later', which is not the product of an earlier stage"):
        Recipe("r", "", "synthetic", (Train("a", (), init="later"), Train("later", ())), status="")
    with pytest.raises(ValueError, match="'d', which is not the product"):  # a data folder is no checkpoint
        Recipe("r", "", "synthetic", (Synth("d", 1, 1), Train("a", ()), Train("b", (), init="d")), status="")
    with pytest.raises(ValueError, match="only training stages have a last.pt"):
        Recipe("r", "", "synthetic", (Train("a", ()), Average("m", ("a",)), Train("b", (), init="m:last")), status="")


def test_plan_states_the_measured_cpu_hours_and_gpu_minutes(tmp_path):
    text = plan(RECIPES["tiny_synth"], RunOptions(out=tmp_path, data=tmp_path / "data"))
    assert "measured: 21.8 CPU hours (a 2-core x86_64 CPU) and 15.5 GPU minutes (one H200)" in text
    assert f"qem average {tmp_path}/c2h/best.pt {tmp_path}/d2/best.pt --out {tmp_path}/soup.pt" in text
    assert "--init {}/g/last.pt".format(tmp_path) in text  # stage h starts from g's last epoch, as it did


def test_coco_recipes_are_marked_not_yet_run_with_an_estimate_from_measured_throughput(tmp_path):
    for name, hours in (("coco_hrnet_w32", "3.0"), ("coco_realtime", "0.5")):
        recipe = RECIPES[name]
        text = plan(recipe, RunOptions(out=tmp_path, data=tmp_path, nproc=8))
        assert "NOT YET RUN" in text and f"{hours} hours on 8 GPUs" in text
        assert "torchrun --nproc_per_node=8 -m models.training.train" in text
        assert flag_values(recipe.stages[0].args, "--lr-drops") == ["90", "120"]


def test_torchrun_on_one_or_several_nodes(tmp_path):
    one = RunOptions(out=tmp_path, data=tmp_path)
    assert launcher(one) == []
    many = replace(one, nproc=8, nnodes=2, node_rank=1, master="10.0.0.1:29500")
    assert launcher(many)[3:] == ["--nproc_per_node=8", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1",
                                  "--master_port=29500", "-m", "models.training.train"]
