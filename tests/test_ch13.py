"""Chapter 13, fast environments: the checks of the learner's batched MountainCar-v0.

(a) the check's cases reach the edges they claim (the left wall, the flag, the time limit, both flags) and its
    reference is Gymnasium itself (rlcore's physics is held to Gymnasium in tests/test_fast_mountain_car.py);
(b) the committed reference data: the speed-ups behind the bar, with a wide margin on both sides;
(c) the grader: the solution notebook's own code passes every check, each planted-bug variant fails the check it
    targets, the slow variants are correct (they pass the lockstep check) yet fail the speed check, and bad input
    gives a clear message.

The speed verdicts are ratios of CPU times measured in the same run (see autograder/checks/ch13.py, SPEEDUP_BAR):
the NumPy solution measures about 6x above the bar and the fastest per-car loop about 2 to 4x below it, so a busy
machine, which slows both sides alike, cannot flip a verdict. No test here compares a time with a fixed number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autograder.checks import ch13
from autograder.protocol import HIDDEN_ENV, PLOTS_ENV, RESULTS_ENV, CheckFailed, LearnerCodeError
from tests.helpers import solution_namespace
from tests.planted.ch13 import BUGS, Car, physics

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "autograder" / "references" / "ch13_fast_environments.json"
LOCKSTEP_BUGS = [pytest.param(name, fn, id=f"{name}: {desc}") for name in ("mountain_car_physics", "BatchedMountainCar")
                 for desc, fn in BUGS[name]]
SLOW = [pytest.param(cls, id=desc) for desc, cls in BUGS["speedup"]]


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("13_fast_environments")


# ---------------------------------------------------------------------------------------------
# (a) the check's cases
# ---------------------------------------------------------------------------------------------


def test_hand_physics_cases_equal_gymnasium():
    import gymnasium as gym

    for position, velocity, action, _ in ch13.PHYSICS_CASES:
        env = gym.make("MountainCar-v0").unwrapped
        env.reset(seed=0)
        env.state = np.array([position, velocity])
        obs, _, terminated, _, _ = env.step(action)
        p, v, term = ch13.ref.physics(np.array([position]), np.array([velocity]), np.array([action]))
        assert (p[0], v[0], bool(term[0])) == (env.state[0], env.state[1], terminated)


def test_cases_reach_their_edges():
    # _lockstep raises RuntimeError when a case misses what it is built to reach (must_see); the correct
    # planted class passes every case, so every case reached its edge.
    ch13.BatchedMountainCar(Car)


def test_case_that_misses_its_edge_is_a_grader_error():
    with pytest.raises(CheckFailed, match="grader problem"):
        with ch13.Check("ch13.test", "a case that cannot reach the flag") as check:
            ch13._lockstep(check, Car, "never pushing", n=1, seed=0, steps=20,
                           policy=lambda obs, t: np.ones(1, dtype=np.int64), must_see=("terminated",))


def test_every_mistake_the_physics_check_names_is_a_real_difference():
    rng = np.random.default_rng(0)
    position, velocity = rng.uniform(-1.2, 0.6, 5000), rng.uniform(-0.07, 0.07, 5000)
    actions = rng.integers(0, 3, 5000)
    want = ch13.ref.physics(position, velocity, actions)
    for name, got in ch13._physics_mistakes(position, velocity, actions).items():
        assert not all(np.array_equal(g, w) for g, w in zip(got, want)), name


# ---------------------------------------------------------------------------------------------
# (b) the reference data
# ---------------------------------------------------------------------------------------------


def test_reference_records_the_bar_and_its_margins():
    ref = json.loads(REFERENCE.read_text())
    assert ref["settings"]["speedup_bar"] == ch13.SPEEDUP_BAR and ref["settings"]["num_envs"] == ch13.SPEEDUP_N
    assert "python -m autograder.references.gen_ch13" in ref["command"]
    runs = ref["speedup_runs"][str(ch13.SPEEDUP_N)]
    assert len(runs["rlcore NumPy (the solution's approach)"]) >= 5
    # The solution's approach clears the bar by a factor of 3 in its slowest run; every loop stays a factor of
    # 1.5 below it in its fastest run.
    assert min(runs["rlcore NumPy (the solution's approach)"]) >= 3 * ch13.SPEEDUP_BAR
    for name, ratios in runs.items():
        if name.startswith("loop"):
            assert max(ratios) <= ch13.SPEEDUP_BAR / 1.5, name
    assert ref["published"], "the published throughput figures are stored next to ours"


# ---------------------------------------------------------------------------------------------
# (c) the grader
# ---------------------------------------------------------------------------------------------


def test_solution_passes_the_lockstep_checks(solution, capsys):
    ch13.mountain_car_physics(solution["mountain_car_physics"])
    ch13.BatchedMountainCar(solution["BatchedMountainCar"])
    out = capsys.readouterr().out
    assert out.count("passed") == 2


def test_solution_passes_the_speed_check(solution, capsys):
    ch13.speedup(solution["BatchedMountainCar"])
    assert "ch13.speedup passed" in capsys.readouterr().out


@pytest.mark.parametrize("check_name, bug", LOCKSTEP_BUGS)
def test_planted_bug_fails(check_name, bug):
    with pytest.raises(CheckFailed):
        getattr(ch13, check_name)(bug)


@pytest.mark.parametrize("slow", SLOW)
def test_slow_variant_is_correct_but_fails_the_speed_check(slow):
    ch13.BatchedMountainCar(slow)  # identical to Gymnasium: speed is the only thing wrong with it
    with pytest.raises(CheckFailed, match="speed-up over SyncVectorEnv") as failure:
        ch13.speedup(slow)
    assert "ratio" in str(failure.value) and "Python loop" in str(failure.value)


def test_speed_check_refuses_an_incorrect_env():
    class Wrong(Car):
        def step(self, actions):
            obs, *rest = super().step(actions)
            return obs + 1, *rest

    with pytest.raises(CheckFailed, match="Speed counts only for a correct env"):
        ch13.speedup(Wrong)


def test_the_physics_mistake_is_named():
    with pytest.raises(CheckFailed, match="left wall that does not stop the car"):
        ch13.mountain_car_physics(BUGS["mountain_car_physics"][1][1])


def test_results_and_plot_are_recorded(solution, tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results.jsonl"))
    monkeypatch.setenv(PLOTS_ENV, str(tmp_path / "plots"))
    ch13.speedup(solution["BatchedMountainCar"])
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["passed"] and record["verdicts"][0]["estimate"] >= ch13.SPEEDUP_BAR
    assert len(list((tmp_path / "plots").glob("*.png"))) == 1


# ---- bad input ------------------------------------------------------------------------------


def test_wrong_signature():
    with pytest.raises(LearnerCodeError, match="signature"):
        ch13.mountain_car_physics(lambda position, velocity: (position, velocity, position > 0))


def test_not_a_class():
    for check in (ch13.BatchedMountainCar, ch13.speedup):
        with pytest.raises(LearnerCodeError, match="class itself"):
            check(Car(3))


def test_physics_raising_nan_shape_and_tuple():
    def raises(position, velocity, actions):
        raise ValueError("boom")

    def nan(position, velocity, actions):
        p, v, t = physics(position, velocity, actions)
        return p * np.nan, v, t

    def shape(position, velocity, actions):
        p, v, t = physics(position, velocity, actions)
        return p[:, None], v, t

    def two(position, velocity, actions):
        return physics(position, velocity, actions)[:2]

    for fn, message in ((raises, "raised ValueError: boom"), (nan, "NaN"), (shape, "shape"), (two, "tuple")):
        with pytest.raises(LearnerCodeError, match=message):
            ch13.mountain_car_physics(fn)


def test_env_step_returning_the_wrong_things():
    class FourTuple(Car):
        def step(self, actions):
            return super().step(actions)[:4]

    class NoInfoKeys(Car):
        def step(self, actions):
            obs, r, term, trunc, info = super().step(actions)
            return obs, r, term, trunc, {}

    class ResetWithoutInfo(Car):
        def reset(self, seed=None):
            return super().reset(seed)[0]

    class NoMaxSteps(Car):
        def __init__(self, num_envs):
            super().__init__(num_envs)

    for cls, message in ((FourTuple, "5-tuple"), (NoInfoKeys, "final_obs"), (ResetWithoutInfo, r"\(obs, info\)"),
                         (NoMaxSteps, "max_episode_steps")):
        with pytest.raises(LearnerCodeError, match=message):
            ch13.BatchedMountainCar(cls)


def test_blank_exercise_fails_cleanly():
    class Blank:
        def __init__(self, num_envs, max_episode_steps=200):
            raise NotImplementedError("Write your solution here, then run the check cell below.")

    for check in (ch13.BatchedMountainCar, ch13.speedup):
        with pytest.raises(LearnerCodeError, match="not written yet"):
            check(Blank)


def test_hidden_seed_replaces_the_visible_one(tmp_path, monkeypatch, capsys):
    hidden = tmp_path / "hidden.json"
    hidden.write_text(json.dumps({"seeds": {"ch13.BatchedMountainCar": [98765]}}))
    monkeypatch.setenv(HIDDEN_ENV, str(hidden))
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results.jsonl"))
    ch13.BatchedMountainCar(Car)
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert any("seed 98765" in case["name"] for case in record["cases"])
