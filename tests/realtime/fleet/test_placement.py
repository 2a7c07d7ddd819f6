"""Placement by pixel rate: spread over the engines, never beyond capacity, sticky, and a camera that fits nowhere
is reported with the reason."""
from realtime.fleet.placement import ASSUMED_RATE, CameraLoad, EngineRoom, place

VGA15 = 640 * 480 * 15.0


def cams(*rates, measured=True):
    return [CameraLoad(f"c{i}", r, measured) for i, r in enumerate(rates)]


def test_cameras_spread_over_the_engines_largest_first():
    p = place(cams(VGA15, VGA15, 2 * VGA15), [EngineRoom("a", 3 * VGA15), EngineRoom("b", 3 * VGA15)])
    assert p.assignment["c2"] != p.assignment["c0"] == p.assignment["c1"] and not p.unplaced


def test_no_engine_carries_more_than_its_capacity_and_the_rest_is_reported():
    p = place(cams(VGA15, VGA15, VGA15), [EngineRoom("a", 1.5 * VGA15), EngineRoom("b", 1.5 * VGA15)])
    assert sorted(p.assignment.values()) == ["a", "b"]
    (name, why), = p.unplaced.items()
    assert name == "c2" and "needs 4.61 Mpx/s, the most any engine has free is 2.30 Mpx/s" == why


def test_running_cameras_stay_where_they_are_and_a_dead_engines_cameras_move():
    engines = [EngineRoom("a", 4 * VGA15), EngineRoom("b", 4 * VGA15)]
    current = {"c0": "b", "c1": "b", "c2": "a"}
    assert place(cams(VGA15, VGA15, VGA15), engines, current).assignment == current
    moved = place(cams(VGA15, VGA15, VGA15), engines[:1], current)
    assert moved.assignment == {"c0": "a", "c1": "a", "c2": "a"} and not moved.unplaced


def test_a_camera_not_measured_yet_runs_on_trial_and_is_refused_once_measured():
    engines = [EngineRoom("a", 0.5 * ASSUMED_RATE)]
    assert place(cams(ASSUMED_RATE, measured=False), engines).assignment == {"c0": "a"}
    measured = place(cams(ASSUMED_RATE), engines, {"c0": "a"})
    assert measured.assignment == {} and "c0" in measured.unplaced


def test_a_camera_on_trial_never_pushes_a_measured_one_out():
    engines = [EngineRoom("a", 1.5 * VGA15)]  # the known camera and half of an assumed one
    loads = [CameraLoad("trial", ASSUMED_RATE, measured=False), CameraLoad("known", VGA15, measured=True)]
    p = place(loads, engines, {"trial": "a", "known": "a"})
    assert p.assignment == {"trial": "a", "known": "a"} and not p.unplaced


def test_an_engine_that_joins_takes_cameras_from_the_busiest():
    engines = [EngineRoom("a", 4 * VGA15), EngineRoom("b", 4 * VGA15)]
    current = {f"c{i}": "a" for i in range(4)}
    assert place(cams(*[VGA15] * 4), engines, current).assignment == current  # sticky without rebalance
    p = place(cams(*[VGA15] * 4), engines, current, rebalance=True)
    assert sorted(p.assignment.values()) == ["a", "a", "b", "b"]


def test_without_engines_every_camera_is_reported():
    assert place(cams(VGA15), []).unplaced == {"c0": "no engine is running"}
