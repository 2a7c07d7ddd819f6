"""The rule ``auto`` picks by, on hand-made timings and AP drops: the fastest candidate within the AP limits."""
from __future__ import annotations

import pytest

from models.export.choice import AP_LIMITS, Candidate, pick


def c(name: str, ms: float, ap_drop: float | None = None) -> Candidate:
    backend, precision = name.split()
    return Candidate(backend, precision, ms, ap_drop)


def test_the_limits_are_the_projects():
    assert AP_LIMITS == {"fp32": 0.0, "bf16": 0.01, "int8": 0.02}


def test_int8_faster_and_within_its_limit_is_chosen():
    choice = pick([c("openvino bf16", 9.0, 0.0009), c("openvino int8", 7.0, 0.015), c("onnxruntime fp32", 17.0)])
    assert choice.chosen.name == "openvino int8"


def test_int8_faster_but_beyond_its_limit_is_not_chosen():
    choice = pick([c("openvino bf16", 9.0, 0.0009), c("openvino int8", 7.0, 0.021), c("onnxruntime fp32", 17.0)])
    assert choice.chosen.name == "openvino bf16"
    assert "openvino int8 7.0 ms AP -0.0210 (left out: AP -0.0210, beyond the 0.02 limit)" in choice.explain()


def test_int8_within_its_limit_but_slower_is_not_chosen():
    assert pick([c("openvino bf16", 9.0, 0.0), c("openvino int8", 9.5, 0.0)]).chosen.name == "openvino bf16"


def test_int8_without_a_recorded_ap_is_never_chosen():
    choice = pick([c("openvino bf16", 9.0), c("openvino int8", 3.0)])
    assert choice.chosen.name == "openvino bf16"
    assert "(left out: no recorded AP)" in choice.explain()


def test_bf16_without_a_recorded_ap_is_allowed_and_beyond_its_limit_is_not():
    assert pick([c("torch bf16", 20.0), c("onnxruntime fp32", 25.0)]).chosen.name == "torch bf16"
    choice = pick([c("openvino bf16", 5.0, 0.011), c("openvino fp32", 8.0), c("torch fp32", 30.0)])
    assert choice.chosen.name == "openvino fp32"


def test_an_int8_better_than_fp32_counts_as_within_the_limit_and_shows_its_gain():
    choice = pick([c("openvino bf16", 9.0, 0.0009), c("openvino int8", 7.0, -0.001)])
    assert choice.chosen.name == "openvino int8"
    assert choice.explain() == "openvino int8 7.0 ms AP +0.0010; openvino bf16 9.0 ms AP -0.0009"


def test_equal_times_go_to_the_earlier_candidate():
    assert pick([c("onnxruntime fp32", 5.0), c("openvino fp32", 5.0)]).chosen.name == "onnxruntime fp32"


def test_nothing_within_the_limits_is_an_error_naming_each_candidate():
    with pytest.raises(ValueError, match="openvino int8: no recorded AP"):
        pick([c("openvino int8", 3.0)])
