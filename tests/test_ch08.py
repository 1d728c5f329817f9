"""The chapter 08 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, and bad input gets a clear message rather than a grader traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder import stats
from autograder.checks import ch08
from autograder.protocol import CheckFailed
from rlcore import dqn
from tests.helpers import solution_namespace
from tests.planted import ch08 as planted

UNIT_CHECKS = ["linear_schedule", "epsilon_greedy", "replay_next_obs", "td_target", "dqn_loss", "ReplayBuffer"]


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("08_dqn")


def test_every_check_has_at_least_three_planted_bugs():
    assert set(planted.BUGS) == set(UNIT_CHECKS) | {"train_dqn"}
    for name, bugs in planted.BUGS.items():
        assert len(bugs) >= 3, name


@pytest.mark.parametrize("name", UNIT_CHECKS)
def test_solution_passes_unit_check(solution, name, capsys):
    getattr(ch08, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch08.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name, description, args",
                         [(n, d, a) for n, bugs in planted.BUGS.items() if n != "train_dqn" for d, a in bugs])
def test_planted_bug_fails_its_check(name, description, args, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch08, name)(*args)
    message = str(err.value)
    assert f"✘ ch08.{name} failed" in message and "Hint:" in message
    assert capsys.readouterr().err == ""


# ---- the training loop ---------------------------------------------------------------------


@pytest.mark.slow
def test_planted_loop_bugs_fail(capsys):
    """Each planted loop bug fails the curve check; the exact futility stop ends it after 2 of 7 seeds."""
    for description, (fn,) in planted.BUGS["train_dqn"]:
        with pytest.raises(CheckFailed) as err:
            ch08.train_dqn(fn)
        message = str(err.value)
        assert "✘ ch08.train_dqn failed" in message and "Diagnosis:" in message, description
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_epsilon_bug_is_diagnosed():
    fn = dict(planted.BUGS["train_dqn"])["epsilon never decays: start_e throughout"][0]
    with pytest.raises(CheckFailed) as err:
        ch08.train_dqn(fn)
    assert "Diagnosis: epsilon never decayed" in str(err.value)
    assert ch08.SECTIONS["epsilon"] in str(err.value)


@pytest.mark.slow
def test_solution_passes_curve_check(solution, capsys, shared_cores):
    ch08.train_dqn(solution["train_dqn"])
    assert "✔ ch08.train_dqn passed" in capsys.readouterr().out


@pytest.mark.slow
def test_unbugged_planted_loop_passes(capsys, shared_cores):
    """The loop the planted variants are built from passes, so each variant fails by its one mistake."""
    ch08.train_dqn(planted.make_loop(None))
    assert "✔ ch08.train_dqn passed" in capsys.readouterr().out


# ---- reference data --------------------------------------------------------------------------


def test_reference_is_calibrated_and_matches_the_settings():
    reference = ch08.load_reference()
    entry = reference["cartpole"]
    assert entry["final"]["n"] >= 10 and len(entry["final"]["values"]) == entry["final"]["n"]
    assert entry["calibration"]["pass_fraction"] >= 0.99
    assert entry["calibration"]["threshold"] == pytest.approx(ch08.pass_line(entry["final"]), abs=1e-3)
    assert entry["calibration_cleanrl_rule"]["threshold"] == pytest.approx(ch08.PUBLISHED_MEAN - ch08.DELTA, abs=1e-3)
    assert reference["settings"] == {k: (list(v) if isinstance(v, tuple) else v) for k, v in dqn.CARTPOLE_FAST.items()}
    assert not set(reference["seeds"]) & set(ch08.VISIBLE_SEEDS)
    assert not set(reference["seeds"]) & set(reference["settings_chosen_on_seeds"])
    assert entry["total_timesteps"] == ch08.TOTAL_TIMESTEPS


def test_delta_follows_section_6():
    sample_sd = 16.11 * np.sqrt(3 / 2)
    assert ch08.DELTA == pytest.approx(max(2 * sample_sd, 0.05 * (488.69 - 22.7)))
    assert ch08.DELTA == pytest.approx(39.46, abs=0.01)
    assert ch08.RANDOM_FLOOR == pytest.approx(22.7 + 0.05 * (488.69 - 22.7))


def test_pass_line_is_section_6_on_our_runs_floored_above_random():
    assert ch08.pass_line({"mean": 480.0, "sd": 10.0}) == pytest.approx(480.0 - 0.05 * (480.0 - 22.7))
    assert ch08.pass_line({"mean": 480.0, "sd": 30.0}) == pytest.approx(420.0)
    assert ch08.pass_line({"mean": 300.0, "sd": 160.0}) == pytest.approx(ch08.RANDOM_FLOOR)


def test_a_random_policy_fails_the_pass_line():
    """Seven seeds at the random policy's return (what an agent that never learns scores) fail."""
    pass_line = ch08.pass_line(ch08.load_reference()["cartpole"]["final"])
    rng = np.random.default_rng(0)
    scores = 22.7 + rng.normal(0, 1.2, size=7)  # SD of a last-100 mean of random episodes: 11.8 / 10
    assert not stats.non_inferiority(scores, ref_mean=pass_line, delta=0.0).passed


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, *args) -> str:
    with pytest.raises(CheckFailed) as err:
        check(*args)
    return str(err.value)


def test_wrong_signature_is_named():
    def linear_schedule(start_e, end_e, t):
        return 1.0

    assert "keep the signature" in _message(ch08.linear_schedule, linear_schedule).lower()
    assert "signature" in _message(ch08.train_dqn, lambda envs, seed: None).lower()


def test_raising_code_is_reported_with_its_line():
    def td_target(q_target_next, rewards, terminated, gamma, q_online_next=None):
        raise ValueError("boom")

    message = _message(ch08.td_target, td_target)
    assert "raised ValueError: boom" in message


def test_nan_and_wrong_shape_are_named():
    def td_nan(q_target_next, rewards, terminated, gamma, q_online_next=None):
        return rewards * float("nan")

    def td_shape(q_target_next, rewards, terminated, gamma, q_online_next=None):
        return q_target_next

    assert "NaN" in _message(ch08.td_target, td_nan)
    assert "shape" in _message(ch08.td_target, td_shape)


def test_not_written_yet_is_named():
    def epsilon_greedy(q_values, epsilon, rng):
        raise NotImplementedError

    assert "not written yet" in _message(ch08.epsilon_greedy, epsilon_greedy)


def test_buffer_must_be_a_class():
    assert "class" in _message(ch08.ReplayBuffer, lambda capacity, obs_shape: None)


def test_loss_must_return_a_pair():
    def dqn_loss(q_network, target_network, batch, gamma, double_dqn=False):
        return torch.tensor(0.0)

    assert "expected a pair (loss, q_taken)" in _message(ch08.dqn_loss, dqn_loss)


def test_loop_that_overruns_the_budget_is_stopped():
    def train_dqn(envs, seed, total_timesteps, log):
        envs.reset(seed=seed)
        while True:
            envs.step(np.zeros(envs.num_envs, dtype=np.int64))

    assert "past total_timesteps" in _message(ch08.train_dqn, train_dqn)
