"""models.training.train: the schedule, a short run that learns, the lines a run prints, checkpoints that resume
and load weights-only, one-line errors."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.training import loop
from models.training.train import (TrainError, amp_dtype, build_args, format_epoch_range, format_saved,
                                   format_schedule, lr_milestones, model_overrides, run)
from tests.cli import ROOT, assert_one_error_line, run_module


def test_schedule_is_dekr_scaled_to_the_epochs():
    assert lr_milestones(140) == [90, 120]
    assert lr_milestones(14) == [9, 12]
    assert lr_milestones(7) == [4, 6]
    assert lr_milestones(2) == [1]
    assert lr_milestones(1) == []


@pytest.mark.parametrize("lr, drops, epochs, words", [
    (1e-3, [], 20, "lr 0.001 (constant)"),
    (1e-3, [13, 17], 20, "lr 0.001, x0.1 after epochs 13, 17"),
    (2.5e-4, [1, 5], 2, "lr 0.00025, x0.1 after epoch 1"),  # a drop after the last epoch changes nothing
])
def test_header_states_the_schedule_in_words(lr, drops, epochs, words):
    assert format_schedule(lr, drops, epochs) == words


def test_header_counts_epochs_from_one():
    assert format_epoch_range(0, 20) == "epochs 1-20"
    assert format_epoch_range(19, 20) == "epoch 20"
    assert format_epoch_range(20, 20) == "no epoch left (20 of 20 done)"


def test_saved_line_names_the_metric_best_pt_was_chosen_by(tmp_path):
    assert format_saved(tmp_path, {"metric": 0.5123, "epoch": 3}, 4, validated=True) == \
        f"saved {tmp_path / 'best.pt'} (epoch 3, val AP 0.5123) and last.pt (epoch 4)"
    assert format_saved(tmp_path, {"metric": -1.25, "epoch": 2}, 2, validated=False) == \
        f"saved {tmp_path / 'best.pt'} (epoch 2, loss 1.2500) and last.pt (epoch 2)"
    assert format_saved(tmp_path, {"metric": -math.inf}, 1, validated=True) == f"saved {tmp_path / 'last.pt'} (epoch 1)"


def test_ablation_switches_and_pose_score_become_model_overrides():
    base = ["--synth", "data", "--input-size", "128"]
    assert model_overrides(build_args(base)) == {"input_size": 128}
    args = build_args(base + ["--no-kqe", "--score-mode", "center_gaussian", "--pose-score", "keypoint_mean",
                              "--keypoint-heatmaps", "--heatmap-weight", "0.25", "--encoder-blocks", "2",
                              "--kpt-blocks", "4", "--labelled-head"])
    assert model_overrides(args) == {"input_size": 128, "use_kqe": False, "score_mode": "center_gaussian",
                                     "pose_score": "keypoint_mean", "keypoint_heatmaps": True, "w_heatmap": 0.25,
                                     "encoder_blocks": 2, "kpt_blocks": 4, "labelled_head": True}


def _train(data: Path, out: Path, *extra: str) -> dict:
    argv = ["--config", "tiny", "--synth", str(data), "--val-synth", str(data), "--out", str(out),
            "--input-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--no-progress",
            "--augment", "off", "--threads", "1", "--seed", "0", *extra]
    return run(build_args(argv))


@pytest.mark.slow
def test_overfitting_four_images_lowers_loss_and_lifts_ap(synth4, tmp_path):
    """tiny at 64 px on four 128 px images, one step per epoch, 80 steps (AP about 0.78 with seeds 0 and 1);
    AP measured on the same images (no flip)."""
    summary = _train(synth4, tmp_path / "run", "--epochs", "80", "--lr", "3e-3", "--lr-drops", "60",
                     "--eval-every", "80", "--save-every", "1000")
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 80
    assert sum(e["loss"] for e in log[-10:]) < 0.5 * sum(e["loss"] for e in log[:10])
    assert summary["AP"] > 0.5, summary


def test_checkpoint_loads_weights_only_and_resumes(synth4, tmp_path):
    _train(synth4, tmp_path / "run", "--epochs", "1", "--eval-every", "100", "--lr-drops", "5", "7")
    state = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    drops = state["extra"]["train_args"]["lr_drops"]
    assert isinstance(state, dict) and drops == [5, 7] and all(isinstance(d, int) for d in drops)
    summary = _train(synth4, tmp_path / "run", "--epochs", "2", "--eval-every", "100",
                     "--resume", str(tmp_path / "run" / "last.pt"))
    assert summary["epoch"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    # --init takes the weights only: a new run, epochs counted from 1
    _train(synth4, tmp_path / "init", "--epochs", "1", "--eval-every", "100",
           "--init", str(tmp_path / "run" / "last.pt"))
    log = [json.loads(line) for line in (tmp_path / "init" / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1]
    # ... also at another input size (fine-tuning at a new resolution: the network is fully convolutional)
    _train(synth4, tmp_path / "init96", "--epochs", "1", "--eval-every", "100", "--input-size", "96",
           "--init", str(tmp_path / "run" / "last.pt"))
    assert torch.load(tmp_path / "init96" / "last.pt", weights_only=True)["config"]["input_size"] == 96
    # ... or with other decode and scoring settings (they change no parameter)
    _train(synth4, tmp_path / "init_kpm", "--epochs", "1", "--eval-every", "100", "--pose-score", "keypoint_mean",
           "--init", str(tmp_path / "run" / "last.pt"))
    assert torch.load(tmp_path / "init_kpm" / "last.pt", weights_only=True)["config"]["pose_score"] == "keypoint_mean"
    with pytest.raises(TrainError, match="different model config"):
        _train(synth4, tmp_path / "other", "--epochs", "1", "--no-kqe", "--init", str(tmp_path / "run" / "last.pt"))
    # ... or adding the keypoint heatmap head, which starts fresh; the reverse is a different network
    _train(synth4, tmp_path / "heat", "--epochs", "1", "--eval-every", "100", "--keypoint-heatmaps",
           "--init", str(tmp_path / "run" / "last.pt"))
    heat = torch.load(tmp_path / "heat" / "last.pt", weights_only=True)
    base = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert heat["config"]["keypoint_heatmaps"] and "heads.heatmaps.out.weight" in heat["state_dict"]
    assert set(heat["state_dict"]) - set(base["state_dict"]) == {k for k in heat["state_dict"] if ".heatmaps." in k}
    with pytest.raises(TrainError, match="different model config"):
        _train(synth4, tmp_path / "back", "--epochs", "1", "--init", str(tmp_path / "heat" / "last.pt"))
    # ... and --train-only trains that head alone: every other weight and BatchNorm statistic stays as it was
    _train(synth4, tmp_path / "head", "--epochs", "1", "--eval-every", "1", "--keypoint-heatmaps", "--lr", "1e-2",
           "--train-only", "heads.heatmaps.", "--init", str(tmp_path / "run" / "last.pt"))
    head = torch.load(tmp_path / "head" / "last.pt", weights_only=True)["state_dict"]
    fresh = {k for k in head if ".heatmaps." in k}
    assert all(torch.equal(head[k], base["state_dict"][k]) for k in head if k not in fresh)
    assert not torch.equal(head["heads.heatmaps.out.weight"], heat["state_dict"]["heads.heatmaps.out.weight"])
    # ... the labelled head likewise, scoring the poses it validates with labelled_mean
    _train(synth4, tmp_path / "labelled", "--epochs", "1", "--eval-every", "1", "--labelled-head", "--lr", "1e-2",
           "--pose-score", "labelled_mean", "--train-only", "qem.labelled_logit.",
           "--init", str(tmp_path / "run" / "last.pt"))
    labelled = torch.load(tmp_path / "labelled" / "last.pt", weights_only=True)
    assert labelled["config"]["labelled_head"] and labelled["config"]["pose_score"] == "labelled_mean"
    assert set(labelled["state_dict"]) - set(base["state_dict"]) == {"qem.labelled_logit.weight",
                                                                     "qem.labelled_logit.bias"}
    assert all(torch.equal(v, labelled["state_dict"][k]) for k, v in base["state_dict"].items())
    _train(synth4, tmp_path / "keeps", "--epochs", "1", "--eval-every", "100", "--pose-score", "labelled_mean",
           "--init", str(tmp_path / "labelled" / "last.pt"))  # --init keeps the head without --labelled-head
    assert torch.load(tmp_path / "keeps" / "last.pt", weights_only=True)["config"]["labelled_head"]
    with pytest.raises(TrainError, match="no parameter"):
        _train(synth4, tmp_path / "none", "--epochs", "1", "--train-only", "heads.nothing")


def test_bf16_training_learns_like_fp32(synth4, tmp_path):
    """The fast CPU path (--amp bf16): the loss falls as in fp32, and the checkpoint holds fp32 weights."""
    logs = {}
    for name, extra in (("fp32", ()), ("bf16", ("--amp", "bf16"))):
        _train(synth4, tmp_path / name, "--epochs", "12", "--lr", "3e-3", "--eval-every", "100", *extra)
        lines = (tmp_path / name / "train_log.jsonl").read_text().splitlines()
        logs[name] = [json.loads(line)["loss"] for line in lines]
    assert logs["bf16"][0] != logs["fp32"][0] and logs["bf16"][0] == pytest.approx(logs["fp32"][0], rel=0.05)
    assert sum(logs["bf16"][-3:]) < 0.8 * sum(logs["bf16"][:3])
    assert abs(logs["bf16"][-1] - logs["fp32"][-1]) < 0.2 * logs["fp32"][-1], logs
    state = torch.load(tmp_path / "bf16" / "last.pt", weights_only=True)["state_dict"]
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())


def test_channels_last_checkpoint_holds_row_major_weights(synth4, tmp_path, monkeypatch):
    _train(synth4, tmp_path / "nhwc", "--epochs", "1", "--eval-every", "100", "--channels-last")
    state = torch.load(tmp_path / "nhwc" / "last.pt", weights_only=True)["state_dict"]
    assert all(t.is_contiguous() for t in state.values())
    load_checkpoint(tmp_path / "nhwc" / "last.pt")
    monkeypatch.setattr(loop, "channels_last_bf16_grads_ok", lambda: False)  # a CPU with the wrong gradients
    with pytest.raises(TrainError, match="drop --channels-last"):
        _train(synth4, tmp_path / "bad", "--epochs", "1", "--channels-last", "--amp", "bf16")


def test_bf16_dilated_conv_gradients_are_right_in_nchw_and_the_refusal_follows_this_cpu():
    """What --amp bf16 relies on (NCHW is right on every CPU), and why it refuses --channels-last where this CPU's
    channels-last gradients are wrong; where they are right, --channels-last --amp bf16 is allowed."""
    rng = torch.get_rng_state()
    assert loop.dilated_conv_weight_grad_error(torch.contiguous_format) < 0.02
    assert torch.equal(torch.get_rng_state(), rng), "the probe must leave the training's random state alone"
    error = loop.dilated_conv_weight_grad_error(torch.channels_last)
    assert loop.channels_last_bf16_grads_ok() == (error < 0.02)
    args = build_args(["--synth", "d", "--channels-last", "--amp", "bf16"])
    if error < 0.02:
        assert loop.place_network(torch.nn.Conv2d(3, 3, 1), torch.device("cpu"), args) == torch.bfloat16
    else:
        with pytest.raises(TrainError, match="drop --channels-last"):
            loop.place_network(torch.nn.Conv2d(3, 3, 1), torch.device("cpu"), args)


def test_amp_dtype_follows_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cuda, "auto") == torch.float16
    assert amp_dtype(cpu, "bf16") == torch.bfloat16 and amp_dtype(cuda, "off") is None
    assert build_args(["--synth", "d", "--no-amp"]).amp == "off"
    with pytest.raises(TrainError, match="--amp bf16"):
        amp_dtype(cpu, "fp16")


def test_time_limit_stops_between_epochs_and_resume_finishes_the_schedule(synth4, tmp_path, capsys):
    run_dir = tmp_path / "run"
    summary = _train(synth4, run_dir, "--epochs", "3", "--eval-every", "100", "--lr-drops", "2",
                     "--time-limit", "1e-6")
    assert summary["epoch"] == 1 and "stopped after epoch 1 of 3" in capsys.readouterr().out
    extra = torch.load(run_dir / "last.pt", weights_only=True)["extra"]
    assert extra["epoch"] == 1 and extra["scheduler"]["last_epoch"] == 1
    summary = _train(synth4, run_dir, "--epochs", "3", "--eval-every", "100", "--lr-drops", "2",
                     "--resume", str(run_dir / "last.pt"))
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3] and summary["epoch"] == 3
    assert [e["lr"] for e in log] == pytest.approx([1e-3, 1e-3, 1e-4])


def test_run_counts_epochs_from_one_and_says_where_it_saved(synth4, tmp_path, capsys):
    """The header, the progress bar and the epoch lines count epochs alike; the last line names the checkpoints."""
    out = tmp_path / "run"
    run(build_args(["--config", "tiny", "--synth", str(synth4), "--val-synth", str(synth4), "--out", str(out),
                    "--input-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--augment",
                    "off", "--threads", "1", "--epochs", "2", "--lr-drops", "1"]))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].endswith("epochs 1-2, lr 0.001, x0.1 after epoch 1"), lines[0]
    assert "epoch 1:" in captured.err and "epoch 2:" in captured.err and "epoch 0" not in captured.err
    assert [line.split(" | ")[0] for line in lines[1:3]] == ["epoch 1", "epoch 2"]
    best = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["best_epoch"]
    ap = torch.load(out / "best.pt", weights_only=True)["extra"]["best"]["metric"]
    assert lines[-1] == f"saved {out / 'best.pt'} (epoch {best}, val AP {ap:.4f}) and last.pt (epoch 2)"


@pytest.mark.parametrize("args, words", [
    (["--synth", "/nonexistent/synth"], "/nonexistent/synth"),
    (["--train-ann", "/nonexistent/a.json", "--train-images", "/tmp"], "/nonexistent/a.json"),
])
def test_cli_missing_data_is_one_line(args, words, tmp_path):
    assert_one_error_line(run_module("models.training.train", *args, "--out", tmp_path / "r"), words)


def test_cli_missing_resume_checkpoint_is_one_line(synth4, tmp_path):
    proc = run_module("models.training.train", "--synth", synth4, "--out", tmp_path / "r", "--resume", tmp_path / "nope.pt",
                      "--device", "cpu", "--workers", "0")
    assert_one_error_line(proc, "nope.pt")


@pytest.mark.parametrize("entry", ["models.training.train", "models.training.ablation"])
def test_importing_a_long_run_loads_every_module_it_uses(entry):
    """A long run must not import code after it starts (edits made meanwhile would reach it half-way)."""
    code = (f"import sys, {entry}; "
            "print(' '.join(m for m in ('models.evaluation.evaluate', 'models.inference.predictor', 'models.training.losses', 'models.training.targets', "
            "'models.data.dataset', 'models.data.augment', 'models.checkpoint', 'models.modeling.network') if m not in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
