"""Chapter 11, PPO: the reference expressions, the reference data and the checks.

(a) the reference expressions of autograder.checks.ch11 (which state rlcore/ppo.py's update one piece per
    function): hand cases of the four regions of the clipped objective, gradients, the KL estimator against the
    exact KL of two categorical distributions, and their agreement with the text of rlcore/ppo.py;
(b) the grading settings are rlcore's (the references were made with rlcore.ppo.train) and the committed
    reference data has the runs, the published numbers and a 7-seed calibration of at least 99%;
(c) the grader: the solution notebook's own code passes every unit check, each planted-bug variant fails the
    check it targets, bad input gives a clear message; a planted training-loop bug fails the curve check after one
    seed (the others and the solution's full curve checks are slow).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder import deeprl, stats
from autograder.checks import ch11
from autograder.protocol import CheckFailed
from rlcore.ppo import ACROBOT_FAST, CARTPOLE_FAST, PPOConfig
from tests.helpers import solution_namespace
from tests.planted.ch11 import BUGS, LOOP_BUGS, loop_correct

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "autograder" / "references" / "ch11_ppo.json"
UNIT_CHECKS = list(BUGS)


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("11_ppo")


# ---------------------------------------------------------------------------------------------
# (a) the reference expressions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r, A, loss, grad", [
    (1.5, 1.0, -1.2, 0.0),   # A > 0 above 1 + eps: clipped, no incentive to go further
    (0.5, 1.0, -0.5, -1.0),  # A > 0 below 1 - eps: the unclipped (pessimistic) term, gradient pushes r up
    (1.5, -1.0, 1.5, 1.0),   # A < 0 above 1 + eps: unclipped, gradient pushes r down
    (0.5, -1.0, 0.8, 0.0),   # A < 0 below 1 - eps: clipped
    (1.1, 2.0, -2.2, -2.0),  # inside the clip range both terms agree
])
def test_policy_loss_four_regions(r, A, loss, grad):
    ratio = torch.tensor([r], requires_grad=True)
    out = ch11.reference_policy_loss(ratio, torch.tensor([A]), 0.2)
    out.backward()
    assert out.item() == pytest.approx(loss, abs=1e-6)
    assert ratio.grad.item() == pytest.approx(grad, abs=1e-6)


def test_policy_loss_is_an_upper_bound_of_the_unclipped_loss():
    # min of the objective = max of the loss: the clipped loss is never below -A r (the pessimistic bound).
    g = torch.Generator().manual_seed(0)
    r, A = torch.exp(0.5 * torch.randn(1000, generator=g)), torch.randn(1000, generator=g)
    per_sample = torch.max(-A * r, -A * torch.clamp(r, 0.8, 1.2))
    assert torch.all(per_sample >= -A * r - 1e-7)
    assert ch11.reference_policy_loss(r, A, 0.2).item() == pytest.approx(per_sample.mean().item(), rel=1e-6)


def test_ratio_gradient_is_the_policy_gradient_at_r_1():
    # At r = 1 the gradient of -A r with respect to log pi is -A: the vanilla policy gradient (lesson section 2).
    new = torch.tensor([-0.7, -1.2], requires_grad=True)
    ratio = ch11.reference_ratio(new, new.detach())
    (-torch.tensor([2.0, -3.0]) * ratio).sum().backward()
    np.testing.assert_allclose(new.grad.numpy(), [-2.0, 3.0], rtol=1e-6)


@pytest.mark.parametrize("v, clip_vloss, loss, grad", [
    (0.5, False, 0.125, -0.5), (0.5, True, 0.32, 0.0), (-0.5, True, 1.125, -1.5), (0.1, True, 0.405, -0.9),
])
def test_value_loss_hand_cases(v, clip_vloss, loss, grad):
    new = torch.tensor([v], requires_grad=True)
    out = ch11.reference_value_loss(new, torch.tensor([0.0]), torch.tensor([1.0]), 0.2, clip_vloss)
    out.backward()
    assert out.item() == pytest.approx(loss, abs=1e-6)
    assert new.grad.item() == pytest.approx(grad, abs=1e-6)


def test_normalize_hand_cases():
    np.testing.assert_allclose(ch11.reference_normalize(torch.tensor([1.0, 2.0, 3.0])).numpy(), [-1, 0, 1], atol=1e-6)
    np.testing.assert_array_equal(ch11.reference_normalize(torch.full((4,), 5.0)).numpy(), np.zeros(4))


def test_kl_estimator_matches_the_exact_kl_of_two_categoricals():
    # Samples a ~ pi_old; mean((r - 1) - log r) with r = pi_new(a) / pi_old(a) estimates KL(pi_old || pi_new).
    old_p, new_p = np.array([0.5, 0.3, 0.2]), np.array([0.35, 0.45, 0.2])  # ratios 0.7, 1.5, 1
    exact = float(np.sum(old_p * np.log(old_p / new_p)))
    a = np.random.default_rng(0).choice(3, size=200_000, p=old_p)
    logratio = torch.tensor(np.log(new_p[a]) - np.log(old_p[a]))
    kl, clipfrac = ch11.reference_kl_clipfrac(logratio, 0.2)
    assert kl == pytest.approx(exact, rel=0.03)
    assert clipfrac == pytest.approx(np.mean(a != 2), abs=1e-6)  # actions 0 and 1 are clipped
    assert ch11.reference_kl_clipfrac(torch.tensor([0.0, math.log(2)]), 0.2) == pytest.approx((0.5 - 0.5 * math.log(2), 0.5))


def test_reference_expressions_are_those_of_rlcore_ppo():
    # The checks restate rlcore/ppo.py's update; if that file's expressions change, these must follow.
    source = (REPO / "rlcore" / "ppo.py").read_text()
    for expression in [
        "ratio = logratio.exp()",
        "approx_kl = ((ratio - 1) - logratio).mean()",
        "((ratio - 1.0).abs() > config.clip_coef).float().mean()",
        "adv_mean, adv_std = mb_advantages.mean(), mb_advantages.std()",  # one process: the minibatch's own
        "mb_advantages = (mb_advantages - adv_mean) / (adv_std + 1e-8)",
        "torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)",
        "pg_loss = torch.max(pg_loss1, pg_loss2).mean()",
        "v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()",
        "v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()",
    ]:
        assert expression in source, expression


# ---------------------------------------------------------------------------------------------
# (b) settings and reference data
# ---------------------------------------------------------------------------------------------


def test_settings_are_rlcore_presets():
    # The exercise's settings are CARTPOLE_FAST's (the references were made by rlcore.ppo.train with them).
    preset = {k: v for k, v in CARTPOLE_FAST.items() if k not in ("num_envs", "total_timesteps")}
    assert {k: ch11.SETTINGS[k] for k in preset} == preset
    assert CARTPOLE_FAST["num_envs"] == ch11.NUM_ENVS == ACROBOT_FAST["num_envs"]
    assert ACROBOT_FAST["total_timesteps"] == ch11.ACROBOT_STEPS
    config = PPOConfig(env_id="CartPole-v1", num_envs=ch11.NUM_ENVS, total_timesteps=ch11.CARTPOLE_STEPS, **ch11.SETTINGS)
    assert config.num_iterations * config.batch_size >= 0.9 * ch11.CARTPOLE_STEPS  # the check's min_steps_fraction
    assert len(ch11.VISIBLE_SEEDS) >= 7


def test_margins_follow_section_6():
    assert ch11._delta(ch11.CARTPOLE_PUBLISHED, ch11.CARTPOLE_RANDOM) == pytest.approx(23.37, abs=0.01)
    assert ch11._delta(ch11.ACROBOT_PUBLISHED, ch11.ACROBOT_RANDOM) == pytest.approx(0.05 * (499.2 - 86.36), abs=1e-9)


@pytest.mark.parametrize("key", ["cartpole", "acrobot"])
def test_reference_data(key):
    data = json.loads(REFERENCE.read_text())
    entry = data[key]
    assert data["command"].startswith("python -m autograder.references.gen_ch11")
    assert entry["final"]["n"] >= 10 and len(entry["final"]["values"]) == entry["final"]["n"]
    assert not set(data["seeds"]) & set(ch11.VISIBLE_SEEDS)
    assert not set(data["seeds"]) & set(data["settings_chosen_on_seeds"])
    assert entry["calibration"]["pass_fraction"] >= 0.99
    assert entry["calibration"]["delta"] == pytest.approx(ch11._task(key).delta, abs=1e-3)
    # Our finals pass the rule on their own (all seeds), and sit near the published 500k-step score.
    finals = entry["final"]["values"]
    assert stats.non_inferiority(finals, ref_mean=entry["published"]["value"], delta=entry["calibration"]["delta"]).passed
    assert len(entry["curve"]["x"]) == len(entry["curve"]["mean"]) == 60
    assert entry["seconds_per_seed"] > 0


# ---------------------------------------------------------------------------------------------
# (c) the grader
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNIT_CHECKS)
def test_solution_passes(solution, name, capsys):
    getattr(ch11, name)(solution[name])
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, description, fn", [(n, d, f) for n, bugs in BUGS.items() for d, f in bugs],
                         ids=[f"{n}-{d}" for n, bugs in BUGS.items() for d, _ in bugs])
def test_planted_bug_fails(name, description, fn):
    with pytest.raises(CheckFailed, match=f"ch11.{name} failed"):
        getattr(ch11, name)(fn)


def test_at_least_three_planted_bugs_per_check():
    assert all(len(bugs) >= 3 for bugs in BUGS.values())
    assert set(BUGS) == {"probability_ratio", "clipped_policy_loss", "value_loss", "normalize_advantages",
                         "approx_kl_and_clipfrac", "minibatch_indices"}
    assert len(LOOP_BUGS) >= 3


def test_mistakes_are_named():
    from tests.planted.ch11 import policy_loss_no_sign, ratio_without_exp
    with pytest.raises(CheckFailed, match="without exp"):
        ch11.probability_ratio(ratio_without_exp)
    with pytest.raises(CheckFailed, match="without the minus sign"):
        ch11.clipped_policy_loss(policy_loss_no_sign)


def test_wrong_signature():
    def clipped_policy_loss(ratio, advantages):
        return ratio.mean()
    with pytest.raises(CheckFailed, match=r"calls it as clipped_policy_loss\(ratio, advantages, clip_coef\)"):
        ch11.clipped_policy_loss(clipped_policy_loss)

    def train_ppo(envs, seed):
        return None
    with pytest.raises(CheckFailed, match=r"calls it as train_ppo\(envs, seed, total_timesteps, log\)"):
        ch11.train_ppo_cartpole(train_ppo)


def test_not_written_yet():
    def probability_ratio(new_logprob, old_logprob):
        raise NotImplementedError
    with pytest.raises(CheckFailed, match="not written yet"):
        ch11.probability_ratio(probability_ratio)


def test_raising_code_is_reported_with_its_line():
    def value_loss(new_values, old_values, returns, clip_coef, clip_vloss):
        return new_values.mean() / undefined_name  # noqa: F821
    with pytest.raises(CheckFailed, match="NameError"):
        ch11.value_loss(value_loss)


def test_float_instead_of_tensor():
    def clipped_policy_loss(ratio, advantages, clip_coef):
        return ch11.reference_policy_loss(ratio, advantages, clip_coef).item()
    with pytest.raises(CheckFailed, match="return a torch tensor"):
        ch11.clipped_policy_loss(clipped_policy_loss)


def test_per_sample_loss_instead_of_mean():
    def clipped_policy_loss(ratio, advantages, clip_coef):
        return torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef))
    with pytest.raises(CheckFailed, match=r"shape \(1,\); expected \(\)"):
        ch11.clipped_policy_loss(clipped_policy_loss)


def test_nan_output():
    def normalize_advantages(advantages):
        return advantages * float("nan")
    with pytest.raises(CheckFailed, match="NaN"):
        ch11.normalize_advantages(normalize_advantages)


def test_wrong_pair():
    with pytest.raises(CheckFailed, match=r"expected a pair \(approx_kl, clipfrac\)"):
        ch11.approx_kl_and_clipfrac(lambda logratio, clip_coef: 0.1)


def test_wrong_number_of_minibatches():
    with pytest.raises(CheckFailed, match="expected num_minibatches"):
        ch11.minibatch_indices(lambda batch_size, num_minibatches, rng: [rng.permutation(batch_size)])


def test_planted_loop_bug_fails_after_one_seed(capsys):
    # The graded task itself, with the wall-clock budget lifted so that a busy test machine cannot turn this into a
    # time failure: the exact futility rule must decide after the first seed, and the diagnosis must name the cause.
    task = dataclasses.replace(ch11._task("cartpole"), budget_s=1e6)
    description, fn = LOOP_BUGS[0]  # the ratio against the new log-probability: no policy gradient at all
    with pytest.raises(CheckFailed, match="cannot pass") as failure:
        deeprl.curve_check(task, fn, n_actions=2)
    assert "seed 2/7" not in capsys.readouterr().out
    assert "returns stayed flat at the random baseline" in str(failure.value)
    assert "clip fraction stayed near zero" in str(failure.value)


def test_curve_tasks():
    for key, env_id, steps in (("cartpole", "CartPole-v1", 150_000), ("acrobot", "Acrobot-v1", 100_000)):
        task = ch11._task(key)
        assert (task.env_id, task.total_timesteps, task.num_envs, task.budget_s) == (env_id, steps, 32, 170.0)
        assert task.seeds == ch11.VISIBLE_SEEDS
        assert set(task.sections) == {"flat", "entropy", "kl", "clip", "value", "nan", "speed"}
    lesson = (REPO / "course" / "11_ppo.ipynb").read_text()
    for title in ch11.SECTIONS.values():
        assert f"### {title}" in lesson, title


@pytest.mark.slow
@pytest.mark.parametrize("description, fn", LOOP_BUGS[1:], ids=[d[:40] for d, _ in LOOP_BUGS[1:]])
def test_other_planted_loop_bugs_fail(description, fn):
    with pytest.raises(CheckFailed, match="ch11.train_ppo_cartpole failed"):
        ch11.train_ppo_cartpole(fn)


@pytest.mark.slow
def test_correct_planted_loop_passes(capsys):
    ch11.train_ppo_cartpole(loop_correct)  # the loop the planted variants start from is itself correct
    assert "passed" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("check", ["train_ppo_cartpole", "train_ppo_acrobot"])
def test_solution_loop_passes(solution, check, capsys):
    getattr(ch11, check)(solution["train_ppo"])
    assert "passed" in capsys.readouterr().out
