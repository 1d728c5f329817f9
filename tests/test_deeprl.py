"""The deep-RL curve-check machinery (autograder/deeprl.py) on real environments.

The probe env rlcore/Probe4 pays +1 for action 1 and -1 for action 0 in one-step episodes, so a loop
that always picks 1 scores exactly the best return and one that always picks 0 the worst: the check's
pass and fail paths run in milliseconds without any training.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from autograder import deeprl, stats
from autograder.protocol import CheckFailed, LearnerCodeError
from rlcore import ppo
from rlcore.envs import given_or_made, make_vector

PROBE = "rlcore/Probe4-ActionDependentReward-v0"
REFERENCE = deeprl.reference_entry([(np.arange(1, 201), np.ones(200))] * 3, total_timesteps=200, points=10)


def task(**overrides) -> deeprl.CurveTask:
    fields = dict(check_id="test.probe", title="always the good action", env_id=PROBE, num_envs=4,
                  total_timesteps=800, seeds=(1, 2, 3, 4, 5, 6, 7), published_mean=1.0, delta=0.1,
                  published_label="the optimum", best_return=1.0, random_return=0.0, reference=REFERENCE,
                  lesson="the test lesson", sections={"flat": "Debugging", "speed": "Speed"})
    fields.update(overrides)
    return deeprl.CurveTask(**fields)


def constant_policy(action: int, *, steps_fraction: float = 1.0, metrics: dict | None = None, cpu: float = 0.0):
    """A 'training loop' that plays one fixed action for a fraction of the budget."""
    def train(envs, seed, total_timesteps, log):
        envs.reset(seed=seed)
        for step in range(0, int(total_timesteps * steps_fraction), envs.num_envs):
            envs.step(np.full(envs.num_envs, action))
            if metrics:
                log(step, metrics)
        end = time.process_time() + cpu
        while time.process_time() < end:  # busy: the budget counts CPU time
            pass
    return train


# --------------------------------------------------------------------------------------------- curves


def test_last_mean_curve_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(1, 10_000, size=500))
    returns = rng.normal(size=500)
    grid = np.array([0, 5, 100, 4_000, 9_999, 20_000])
    got = deeprl.last_mean_curve(steps, returns, grid, window=100)
    for g, value in zip(grid, got):
        ended = returns[steps <= g]
        if ended.size == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(ended[-100:].mean(), abs=1e-12)


def test_reference_entry_summarises_finals_and_band():
    runs = [(np.arange(1, 301), np.full(300, v)) for v in (1.0, 2.0, 3.0)]
    entry = deeprl.reference_entry(runs, total_timesteps=300, points=3)
    assert entry["final"] == {"mean": 2.0, "sd": 1.0, "n": 3, "values": [1.0, 2.0, 3.0]}
    assert entry["curve"]["x"] == [100, 200, 300]
    assert entry["curve"]["low"] == [1.0] * 3 and entry["curve"]["high"] == [3.0] * 3


# ------------------------------------------------------------------------------------- environment


def test_graded_env_records_the_episodes_the_env_counted_and_enforces_the_budget():
    envs = deeprl.GradedVectorEnv("CartPole-v1", 4, seed=3, total_timesteps=2_000)
    envs.reset(seed=3)
    ended = []
    for _ in range(500):
        _, _, term, trunc, info = envs.step(np.zeros(4, dtype=np.int64))
        done = term | trunc
        ended += [(envs.global_step, float(info["episode_return"][i])) for i in np.flatnonzero(done)]
    assert envs.global_step == 2_000
    assert [(s, r) for s, r, _ in envs.episodes] == ended and len(ended) > 50
    with pytest.raises(deeprl.BudgetExceeded, match="total_timesteps = 2,000"):
        envs.step(np.zeros(4, dtype=np.int64))
    assert envs.single_action_space.n == 2
    envs.close()


def test_metric_log_takes_dicts_keywords_and_tensors_and_refuses_text():
    log = deeprl.MetricLog()
    log(10, {"losses/entropy": torch.tensor(0.5)}, epsilon=np.float32(0.25))
    log(20, {"losses/entropy": 0.4})
    steps, values = log.series("losses/entropy")
    assert steps.tolist() == [10, 20] and values.tolist() == pytest.approx([0.5, 0.4])
    assert log.series("epsilon")[1].tolist() == [0.25]
    assert log.series("never")[0].size == 0
    with pytest.raises(TypeError, match="log numbers"):
        log(30, {"losses/entropy": "high"})


# ----------------------------------------------------------------------------------------- check


def test_a_correct_loop_passes_and_prints_one_line_per_seed(capsys):
    runs = deeprl.curve_check(task(), constant_policy(1))
    out = capsys.readouterr().out
    assert len(runs) == 7 and all(r.score == 1.0 for r in runs)
    assert "seed 7/7" in out and "✔ test.probe passed" in out


def test_a_failing_loop_stops_once_the_verdict_is_decided_and_is_diagnosed():
    with pytest.raises(CheckFailed) as err:
        deeprl.curve_check(task(), constant_policy(0, metrics={"losses/entropy": 0.0}), n_actions=2)
    message = str(err.value)
    assert "after 1 of 7 seeds" in message and "cannot pass even if every remaining seed scored 1" in message
    assert "flat at the random baseline" not in message  # -1 is below random (0), not at it
    assert "entropy collapsed early" in message and "section 'Debugging'" not in message


def test_futility_never_stops_a_run_that_could_still_pass():
    t = task(published_mean=490.04, delta=23.4, best_return=500.0)
    rng = np.random.default_rng(1)
    for _ in range(300):
        k = int(rng.integers(1, 7))
        scores = list(rng.uniform(400, 500, size=k))
        best = deeprl._best_case(scores, t, 7)
        if not best.passed:  # then no completion of the remaining seeds passes
            for _ in range(20):
                filled = scores + list(rng.uniform(400, 500, size=7 - k))
                assert not stats.non_inferiority(filled, ref_mean=490.04, delta=23.4).passed


def test_a_loop_that_stops_early_or_overruns_gets_a_clear_message():
    with pytest.raises(CheckFailed, match="stopped after 400 environment steps"):
        deeprl.curve_check(task(), constant_policy(1, steps_fraction=0.5))
    with pytest.raises(LearnerCodeError, match="past total_timesteps"):
        deeprl.curve_check(task(), constant_policy(1, steps_fraction=2.0))


def test_a_loop_too_slow_for_the_budget_is_told_after_the_first_seed():
    with pytest.raises(CheckFailed) as err:
        deeprl.curve_check(task(budget_s=1.0), constant_policy(1, cpu=0.3))
    assert "7 seeds need about" in str(err.value) and "of CPU" in str(err.value) and "section 'Speed'" in str(err.value)


def test_the_cpu_scale_multiplies_the_budget_and_refuses_nonsense(monkeypatch):
    from autograder.protocol import CPU_SCALE_ENV

    monkeypatch.setenv(CPU_SCALE_ENV, "10")  # 0.3 s per seed x 7 against 1 s x 10: within the budget
    deeprl.curve_check(task(budget_s=1.0), constant_policy(1, cpu=0.3))
    monkeypatch.setenv(CPU_SCALE_ENV, "0.5")  # a faster machine may tighten it: 7 x 0.5 s against 4 s x 0.5
    with pytest.raises(CheckFailed, match="over the budget of 2 s"):
        deeprl.curve_check(task(budget_s=4.0), constant_policy(1, cpu=0.5))
    for bad in ("fast", "0", "-2", "nan", "inf"):
        monkeypatch.setenv(CPU_SCALE_ENV, bad)
        with pytest.raises(ValueError, match="AUTOGRADER_CPU_SCALE must be a positive number"):
            deeprl.cpu_budget_scale()


def test_wrong_signature_is_reported_before_any_training():
    with pytest.raises(LearnerCodeError, match="calls it as"):
        deeprl.curve_check(task(), lambda envs, seed: None)


# ------------------------------------------------------------------------------------- diagnosis


def diagnosis(history: dict, finals=(480.0,), **overrides) -> str:
    log = deeprl.MetricLog()
    for name, values in history.items():
        for i, v in enumerate(values):
            log(i * 1000, {name: v})
    t = task(published_mean=490.04, delta=23.4, best_return=500.0, random_return=22.7,
             sections={"kl": "KL", "clip": "Clip", "value": "Critic", "q": "Q", "epsilon": "Eps", "flat": "Flat"},
             **overrides)
    return "\n".join(deeprl.diagnose(t, log, list(finals), n_actions=2))


def test_a_healthy_run_gets_no_diagnosis():
    healthy = {"losses/entropy": np.linspace(0.69, 0.3, 20), "losses/approx_kl": np.full(20, 0.01),
               "losses/clipfrac": np.full(20, 0.1), "losses/explained_variance": np.linspace(0.2, 0.9, 20),
               "losses/q_values": np.linspace(1, 90, 20), "charts/epsilon": np.linspace(1, 0.05, 20)}
    assert diagnosis(healthy) == ""


@pytest.mark.parametrize("history, finals, expected", [
    ({"losses/approx_kl": [0.01, 2.0]}, (480.0,), "section 'KL'"),
    ({"losses/clipfrac": [0.0] * 8}, (480.0,), "section 'Clip'"),
    ({"losses/explained_variance": [0.5, 0.2, -0.5, -0.8]}, (480.0,), "section 'Critic'"),
    ({"losses/q_values": [1.0, 50.0, 5e3]}, (480.0,), "section 'Q'"),
    ({"charts/epsilon": [1.0, 1.0, 1.0]}, (480.0,), "section 'Eps'"),
    ({"losses/entropy": [0.69] * 4}, (21.0, 25.0), "section 'Flat'"),
    ({"losses/value_loss": [1.0, float("nan")]}, (480.0,), "NaN or infinite"),
    ({"losses/entropy": [0.6, 0.001, 0.001, 0.001, 0.0, 0.0, 0.0, 0.0]}, (200.0,), "entropy collapsed early"),
    ({}, (200.0,), "logged no metrics"),
])
def test_each_symptom_names_its_cause_and_section(history, finals, expected):
    assert expected in diagnosis(history, finals)


# -------------------------------------------------------------------------------- rlcore envs=


def test_algorithms_train_in_the_envs_they_are_given_and_leave_them_open():
    envs = make_vector("CartPole-v1", 4, seed=0)
    cfg = ppo.PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, progress=False)
    result = ppo.train(cfg, envs=envs)
    assert result.global_step == 128
    envs.reset(seed=1)  # still usable: the caller owns it
    envs.close()


def test_given_or_made_explains_a_mismatch():
    with make_vector("CartPole-v1", 2) as envs:
        assert given_or_made(envs, "CartPole-v1", 2, "auto") == (envs, False)
        with pytest.raises(ValueError, match="hold 2 environments but the config says num_envs = 4"):
            given_or_made(envs, "CartPole-v1", 4, "auto")
    with pytest.raises(TypeError, match="no 'reset'"):
        given_or_made(object(), "CartPole-v1", 2, "auto")


def test_calibration_is_the_rule_applied_to_bootstrap_draws():
    finals = np.random.default_rng(3).normal(480, 25, size=15)
    got = deeprl.calibration(finals, ref_mean=490.0, delta=23.4, n_seeds=7, draws=500, seed=5)
    draws = np.random.default_rng(5).choice(finals, size=(500, 7), replace=True)
    expected = np.mean([stats.non_inferiority(d, ref_mean=490.0, delta=23.4).passed for d in draws])
    assert got == pytest.approx(expected) and 0 < got < 1
