"""Chapter 14, large-batch PPO with the environment on the device: settings, reference data and the checks.

(a) the grading settings are rlcore's CARTPOLE_FAST at 64 environments with the square-root learning rate, the
    committed reference data has its runs, the published number and a 7-seed calibration of at least 99%;
(b) the grader: the solution notebook's own code passes every unit check, each planted-bug variant fails the
    check it targets (with the mistake named where the check can name it), bad input gives a clear message;
(c) the on-device curve check: the grader's environment refuses NumPy actions and counts episodes; a planted
    loop bug that converts the actions fails at the first step; the other loop bugs and the solution's full
    curve check are slow.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder import deeprl, stats
from autograder.checks import ch14
from autograder.protocol import CheckFailed
from rlcore.ppo import CARTPOLE_FAST, PPOConfig
from tests.helpers import solution_namespace
from tests.planted.ch14 import BUGS, LOOP_BUGS, loop_correct, step_correct

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "autograder" / "references" / "ch14_large_batch_ppo.json"


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("14_large_batch_ppo")


# ---------------------------------------------------------------------------------------------
# (a) settings and reference data
# ---------------------------------------------------------------------------------------------


def test_settings_are_cartpole_fast_at_64_envs_with_the_sqrt_rule():
    same = {k: v for k, v in CARTPOLE_FAST.items() if k not in ("num_envs", "total_timesteps", "learning_rate")}
    assert {k: ch14.SETTINGS[k] for k in same} == same
    batch = ch14.NUM_ENVS * ch14.SETTINGS["num_steps"]
    assert ch14.SETTINGS["learning_rate"] == pytest.approx(ch14.reference_scaled_lr(3e-3, 32 * 16, batch, "sqrt"))
    config = PPOConfig(num_envs=ch14.NUM_ENVS, total_timesteps=ch14.TOTAL_TIMESTEPS, **ch14.SETTINGS)
    assert config.num_iterations * config.batch_size >= 0.9 * ch14.TOTAL_TIMESTEPS
    assert len(ch14.VISIBLE_SEEDS) == 10 == len(set(ch14.VISIBLE_SEEDS))


def test_margin_follows_section_6():
    final = json.loads(REFERENCE.read_text())["cartpole"]["final"]
    assert ch14._delta(final) == pytest.approx(max(2 * final["sd"], 0.05 * (final["mean"] - 22.7)))
    assert ch14._task().published_mean == final["mean"]


def test_reference_data():
    data = json.loads(REFERENCE.read_text())
    entry = data["cartpole"]
    assert data["command"].startswith("python -m autograder.references.gen_ch14")
    assert entry["final"]["n"] >= 10 and len(entry["final"]["values"]) == entry["final"]["n"]
    assert not set(data["seeds"]) & set(ch14.VISIBLE_SEEDS)
    assert entry["calibration"]["pass_fraction"] >= 0.99
    assert entry["calibration"]["delta"] == pytest.approx(ch14._delta(entry["final"]), abs=1e-3)
    assert stats.non_inferiority(entry["final"]["values"], ref_mean=entry["final"]["mean"],
                                 delta=entry["calibration"]["delta"]).passed
    assert entry["published"]["value"] == 490.04 and "cleanrl_rule_pass_fraction" in entry
    assert data["settings"] == json.loads(json.dumps(dict(ch14.SETTINGS, num_envs=ch14.NUM_ENVS)))
    assert len(entry["curve"]["x"]) == 60 and entry["seconds_per_seed"] > 0


# ---------------------------------------------------------------------------------------------
# (b) the unit checks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUGS))
def test_solution_passes(solution, name, capsys):
    getattr(ch14, name)(solution[name])
    assert "passed" in capsys.readouterr().out


def test_correct_planted_step_passes(capsys):
    ch14.cartpole_step(lambda state, lengths, actions, reset_states, max_episode_steps:
                       step_correct(state, lengths, actions, reset_states, max_episode_steps))
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, description, fn", [(n, d, f) for n, bugs in BUGS.items() for d, f in bugs],
                         ids=[f"{n}-{d[:40]}" for n, bugs in BUGS.items() for d, _ in bugs])
def test_planted_bug_fails(name, description, fn):
    with pytest.raises(CheckFailed, match=f"ch14.{name} failed"):
        getattr(ch14, name)(fn)


def test_at_least_three_planted_bugs_per_check():
    assert all(len(bugs) >= 3 for bugs in BUGS.values())
    assert set(BUGS) == {"cartpole_step", "scaled_learning_rate"}
    assert len(LOOP_BUGS) >= 3


@pytest.mark.parametrize("bug, named", [
    ("semi_implicit", "semi-implicit Euler"), ("degrees", "12 \\(degrees\\)"), ("reset_all", "every environment reset"),
    ("truncation_as_termination", "truncation reported as termination"), ("final_after_reset", "after the reset"),
    ("lengths_kept", "step counter not reset"), ("off_by_one", "one step late"), ("host_sync", "host"),
])
def test_step_mistakes_are_named(bug, named):
    def cartpole_step(state, lengths, actions, reset_states, max_episode_steps):
        return step_correct(state, lengths, actions, reset_states, max_episode_steps, bug=bug)
    with pytest.raises(CheckFailed, match=named):
        ch14.cartpole_step(cartpole_step)


def test_lr_mistakes_are_named():
    from tests.planted.ch14 import lr_always_linear, lr_inverse
    with pytest.raises(CheckFailed, match="the inverse ratio"):
        ch14.scaled_learning_rate(lr_inverse)
    with pytest.raises(CheckFailed, match="the linear rule"):
        ch14.scaled_learning_rate(lr_always_linear)


def test_wrong_signature():
    def cartpole_step(state, actions):
        return state
    with pytest.raises(CheckFailed, match=r"cartpole_step\(state, lengths, actions, reset_states, max_episode_steps\)"):
        ch14.cartpole_step(cartpole_step)

    def train_large_batch_ppo(envs, seed):
        return None
    with pytest.raises(CheckFailed, match=r"train_large_batch_ppo\(envs, seed, total_timesteps, log\)"):
        ch14.train_large_batch_ppo(train_large_batch_ppo)


def test_not_written_yet():
    def scaled_learning_rate(base_lr, base_batch, batch_size, rule):
        raise NotImplementedError
    with pytest.raises(CheckFailed, match="not written yet"):
        ch14.scaled_learning_rate(scaled_learning_rate)


@pytest.mark.parametrize("returned, match", [
    (lambda out: out[:5], "a tuple of 6 tensors"),
    (lambda out: None, "forget the `return`"),
    (lambda out: (out[0].numpy(), *out[1:]), "return torch tensors"),
    (lambda out: (out[0].float(), *out[1:]), "dtype of `state`"),
    (lambda out: (*out[:3], out[3].long(), *out[4:]), "terminated has dtype torch.int64; expected torch.bool"),
    (lambda out: (out[0], out[1].float(), *out[2:]), "next_lengths has dtype"),
    (lambda out: (out[0] * float("nan"), *out[1:]), "NaN"),
    (lambda out: (out[0][:, :3], *out[1:]), "shape"),
])
def test_bad_outputs_are_explained(returned, match):
    def cartpole_step(state, lengths, actions, reset_states, max_episode_steps):
        return returned(step_correct(state, lengths, actions, reset_states, max_episode_steps))
    with pytest.raises(CheckFailed, match=match):
        ch14.cartpole_step(cartpole_step)


def test_raising_code_is_reported():
    def cartpole_step(state, lengths, actions, reset_states, max_episode_steps):
        return state / undefined_name  # noqa: F821
    with pytest.raises(CheckFailed, match="NameError"):
        ch14.cartpole_step(cartpole_step)


def test_lr_that_is_not_a_number():
    with pytest.raises(CheckFailed, match="expected a number"):
        ch14.scaled_learning_rate(lambda base_lr, base_batch, batch_size, rule: str(base_lr))


# ---------------------------------------------------------------------------------------------
# (c) the on-device curve check
# ---------------------------------------------------------------------------------------------


def test_graded_env_refuses_numpy_actions_and_counts_episodes():
    envs = ch14.GradedTorchCartPole("CartPole-v1", 16, seed=0, total_timesteps=16 * 100)
    obs, _ = envs.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and envs.device == torch.device("cpu")
    with pytest.raises(TypeError, match="host round trip"):
        envs.step(np.zeros(16, dtype=np.int64))
    for _ in range(100):
        envs.step(torch.randint(0, 2, (16,)))
    assert len(envs.episodes) > 30 and all(r == n for _, r, n in envs.episodes)
    with pytest.raises(deeprl.BudgetExceeded):
        envs.step(torch.zeros(16, dtype=torch.long))


def test_numpy_actions_loop_fails_at_once_and_grading_env_is_restored():
    description, fn = LOOP_BUGS[0]
    assert "NumPy" in description
    with pytest.raises(CheckFailed, match="host round trip"):
        ch14.train_large_batch_ppo(fn)
    assert deeprl.GradedVectorEnv is not ch14.GradedTorchCartPole


def test_curve_task_and_lesson_sections():
    task = ch14._task()
    assert (task.env_id, task.total_timesteps, task.num_envs, task.budget_s) == ("CartPole-v1", 300_000, 64, 170.0)
    assert task.seeds == ch14.VISIBLE_SEEDS
    lesson = (REPO / "course" / "14_large_batch_ppo.ipynb").read_text()
    for title in ch14.SECTIONS.values():
        assert f"### {title}" in lesson, title


@pytest.mark.slow
def test_flat_loop_bug_fails_after_one_seed(capsys):
    task = dataclasses.replace(ch14._task(), budget_s=1e6)
    with pytest.raises(CheckFailed, match="cannot pass") as failure:
        deeprl.curve_check(task, LOOP_BUGS[1][1], n_actions=2)
    assert "seed 2/7" not in capsys.readouterr().out
    assert "returns stayed flat at the random baseline" in str(failure.value)


@pytest.mark.slow
@pytest.mark.parametrize("description, fn", LOOP_BUGS[2:], ids=[d[:40] for d, _ in LOOP_BUGS[2:]])
def test_other_planted_loop_bugs_fail(description, fn):
    with pytest.raises(CheckFailed, match="ch14.train_large_batch_ppo failed"):
        ch14.train_large_batch_ppo(fn)


@pytest.mark.slow
def test_correct_planted_loop_passes(capsys, shared_cores):
    ch14.train_large_batch_ppo(loop_correct)
    assert "passed" in capsys.readouterr().out


@pytest.mark.slow
def test_solution_loop_passes(solution, capsys, shared_cores):
    ch14.train_large_batch_ppo(solution["train_large_batch_ppo"])
    assert "passed" in capsys.readouterr().out
