"""The chapter 07 grader is itself tested: the solution's code passes every check, every planted bug
fails the check it targets, bad input gets a clear message rather than a grader traceback, and the
references the checks rest on still hold (the tolerance is far from correct runs and from the bugs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autograder.checks import ch07
from autograder.deeprl import GradedVectorEnv, MetricLog
from autograder.protocol import CheckFailed
from rlcore.nets import mlp
from tests.helpers import solution_namespace
from tests.planted import ch07 as planted

NAMES = list(planted.BUGS)


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("07_deep_learning_for_rl")


def _message(check, fn) -> str:
    with pytest.raises(CheckFailed) as err:
        check(fn)
    return str(err.value)


def test_every_graded_piece_has_at_least_three_planted_bugs():
    assert set(NAMES) == {"value_net", "regression_step", "overfit_one_batch", "td0_targets", "train_value"}
    for name, bugs in planted.BUGS.items():
        assert len(bugs) >= 3, name


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes(solution, name, capsys):
    getattr(ch07, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch07.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name", NAMES)
def test_planted_correct_pieces_pass(name, capsys):
    """The correct pieces the planted bugs are made from pass too (so each bug is the only change)."""
    getattr(ch07, name)(getattr(planted, name))
    assert f"✔ ch07.{name} passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, description, fn", [(n, d, f) for n, bugs in planted.BUGS.items() for d, f in bugs])
def test_planted_bug_fails(name, description, fn, capsys):
    msg = _message(getattr(ch07, name), fn)
    assert f"✘ ch07.{name} failed" in msg and "Hint:" in msg
    assert capsys.readouterr().err == ""


# ---- the messages name the mistake -------------------------------------------------------------


def test_regression_mistakes_are_named():
    assert "broadcasting makes a [B, B] matrix" in _message(ch07.regression_step, planted.step_broadcast)
    assert "sum of squared errors" in _message(ch07.regression_step, planted.step_sum)
    assert "after the step" in _message(ch07.regression_step, planted.step_loss_after)
    assert "targets.detach()" in _message(ch07.regression_step, planted.step_not_detached)


def test_td0_mistakes_are_named():
    assert "bootstrapping through terminated" in _message(ch07.td0_targets, planted.targets_through_terminal)
    assert "truncation treated as termination" in _message(ch07.td0_targets, planted.targets_truncation_is_termination)
    assert "use final_values" in _message(ch07.td0_targets, planted.targets_next_obs)
    assert "torch.no_grad()" in _message(ch07.td0_targets, planted.targets_not_detached)


def test_probe_failures_are_diagnosed():
    msg = _message(ch07.train_value, planted.loop_truncation_is_termination)
    assert "Probe6" in msg and "Diagnosis:" in msg and "truncation treated as termination" in msg
    msg = _message(ch07.train_value, planted.loop_through_terminal)
    assert "Probe1" in msg and "never ended" in msg
    msg = _message(ch07.train_value, planted.loop_stale_obs)
    assert "Probe2" in msg and "obs = next_obs" in msg
    assert "discounted" in _message(ch07.train_value, planted.loop_discounted_reward)
    assert "nothing was learned" in _message(ch07.train_value, planted.loop_one_update)


def test_value_net_names_default_init():
    assert "not orthogonal" in _message(ch07.value_net, planted.net_default_init)


# ---- bad input: every failure is a message that names the problem ------------------------------


def test_wrong_signature():
    msg = _message(ch07.regression_step, lambda net, obs, targets: 0.0)
    assert "but the check calls it as" in msg and "(net, optimizer, obs, targets)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch07.value_net, None)


def test_raises():
    msg = _message(ch07.td0_targets, lambda rewards, next_values, terminated, truncated, final_values, gamma: 1 / 0)
    assert "raised ZeroDivisionError" in msg and "Traceback" not in msg


def test_not_implemented():
    def blank(obs_dim, hidden_sizes):
        raise NotImplementedError

    assert "not written yet" in _message(ch07.value_net, blank)


def test_wrong_shape_and_nan():
    msg = _message(ch07.td0_targets,
                   lambda rewards, next_values, terminated, truncated, final_values, gamma: rewards[:2])
    assert "expected (4,)" in msg
    msg = _message(ch07.td0_targets,
                   lambda rewards, next_values, terminated, truncated, final_values, gamma: rewards * np.nan)
    assert "NaN" in msg
    msg = _message(ch07.overfit_one_batch, lambda net, obs, targets, steps, lr: [0.0] * (steps - 1))
    assert "expected (10,)" in msg


def test_returns_none_or_not_a_module():
    assert "returned None" in _message(ch07.regression_step, lambda net, optimizer, obs, targets: None)
    assert "return an nn.Module" in _message(ch07.value_net, lambda obs_dim, hidden_sizes: [1, 2])

    def forgot_return(envs, seed, total_timesteps, log):
        planted.train_value(envs, seed, total_timesteps, log)

    assert "return the trained value network" in _message(ch07.train_value, forgot_return)


def test_network_with_wrong_output_shape():
    msg = _message(ch07.value_net, lambda obs_dim, hidden_sizes: mlp(obs_dim, hidden_sizes, 2))
    assert "expected [5, 1]" in msg


def test_loop_past_the_budget_is_stopped():
    def greedy_for_steps(envs, seed, total_timesteps, log):
        envs.reset(seed=seed)
        while True:
            envs.step(np.zeros(envs.num_envs, dtype=np.int64))

    msg = _message(ch07.train_value, greedy_for_steps)
    assert "BudgetExceeded" in msg and "past total_timesteps" in msg


# ---- the references the checks rest on -------------------------------------------------------------


def test_reference_tolerance_is_far_from_correct_runs_and_bugs():
    ref = ch07.load_reference()
    for env_id, _, points in ch07.PROBES:
        entry = ref["probes"][env_id]
        assert entry["analytic"] == ch07.analytic_values(env_id, points).tolist()
        worst = max([entry["correct"]["max_error"]] + [v["max_error"] for v in entry["variants"].values()])
        assert worst < entry["tolerance"] / 5, (env_id, worst)
    for name, bug in ref["bugs"].items():
        assert bug["error_over_tolerance"] > 5, name
    assert ref["settings"] == {"gamma": ch07.GAMMA, "hidden": list(ch07.HIDDEN), "lr": ch07.LR,
                               "num_envs": ch07.NUM_ENVS, "total_timesteps": ch07.TOTAL_TIMESTEPS,
                               "tolerance_fraction": ch07.PROBE_TOLERANCE}


def test_a_split_matches_the_book():
    split = ch07.load_reference()["a_split"]
    assert np.allclose(split["ours"]["semi_gradient_detached"], split["book"]["true_values"], atol=1e-3)
    assert np.allclose(split["ours"]["residual_gradient_not_detached"], split["book"]["residual_gradient"], atol=1e-3)


def test_overfit_reference_is_reproduced():
    ref = ch07.load_reference()["overfit"]
    obs, targets = ch07._overfit_case(1)
    with ch07.single_threaded():
        losses = ch07.reference_overfit(ch07._seeded_mlp(4, ch07.OVERFIT_OBS_DIM), obs, targets, ch07.OVERFIT_STEPS,
                                        ch07.OVERFIT_LR)
    assert np.isclose(losses[0], ref["graded_first_loss"], rtol=1e-3)
    assert losses[-1] < 3 * ref["graded_final_loss"]
    assert losses[-1] < 1e-3 * losses[0]


def test_reference_loop_learns_and_the_truncation_bug_does_not():
    """The reference loop on Probe 6 reaches 1 / (1 - gamma); with truncation treated as termination it
    settles near the bug's fixed point instead."""
    points = [[0.0]]
    values = {}
    for bug in (False, True):
        envs = GradedVectorEnv("rlcore/Probe6-TimeLimit-v0", ch07.NUM_ENVS, seed=5, total_timesteps=ch07.TOTAL_TIMESTEPS)
        with ch07.single_threaded():
            net = ch07.reference_train_value(envs, 5, ch07.TOTAL_TIMESTEPS, MetricLog(), truncation_is_termination=bug)
        with torch.no_grad():
            values[bug] = float(net(torch.tensor(points)).reshape(-1)[0])
    assert abs(values[False] - 10.0) < 0.01
    assert abs(values[True] - 1 / (1 - ch07.GAMMA * 19 / 20)) < 0.5


def test_reference_td0_targets_agree_with_a_naive_loop():
    rng = np.random.default_rng(3)
    r, nv, fv = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    term, trunc = rng.random((6, 3)) < 0.3, rng.random((6, 3)) < 0.3
    got = ch07.reference_td0_targets(r, nv, term, trunc, fv, 0.8)
    for t in range(6):
        for i in range(3):
            boot = 0.0 if term[t, i] else (fv[t, i] if trunc[t, i] else nv[t, i])
            assert np.isclose(got[t, i], r[t, i] + 0.8 * boot)


def test_hidden_seeds_are_used(solution, tmp_path, monkeypatch, capsys):
    hidden = tmp_path / "hidden.json"
    hidden.write_text('{"seeds": {"ch07.train_value": [4242]}}')
    monkeypatch.setenv("AUTOGRADER_HIDDEN", str(hidden))
    results = ch07.probe_runs(solution["train_value"])
    assert {r["seed"] for r in results} == {4242}
    assert "hidden seeds" in capsys.readouterr().out


def test_feedback_plots_are_saved(solution, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    ch07.overfit_one_batch(solution["overfit_one_batch"])
    with pytest.raises(CheckFailed):
        ch07.train_value(planted.loop_truncation_is_termination)
    assert (tmp_path / "ch07.overfit_one_batch.losses.png").stat().st_size > 10_000
    assert (tmp_path / "ch07.train_value.values.png").stat().st_size > 10_000


def test_value_net_leaves_the_network_usable():
    """A custom nn.Module subclass holding the same layers passes too (the check reads leaf modules)."""

    class Critic(nn.Module):
        def __init__(self, obs_dim, hidden_sizes):
            super().__init__()
            self.body = planted.value_net(obs_dim, hidden_sizes)

        def forward(self, x):
            return self.body(x)

    ch07.value_net(lambda obs_dim, hidden_sizes: Critic(obs_dim, hidden_sizes))
