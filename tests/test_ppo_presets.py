"""The PPO presets: valid configs, and (slow) that each learns its task.

CARTPOLE_WALLCLOCK and CARTPOLE_THROUGHPUT (benchmarks/ppo_cartpole.py) learn CartPole in tests/test_algorithms.py.

ACROBOT_FAST: CARTPOLE_FAST's settings on a 100k-step budget, graded on Acrobot-v1 in chapter 11.
INVERTED_PENDULUM_FAST: a Gaussian policy with observation and reward normalization on MuJoCo's
InvertedPendulum-v5 (needs the optional `mujoco` wheels: `pip install "gymnasium[mujoco]"`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcore.ppo import (ACROBOT_FAST, CARTPOLE_FAST, CARTPOLE_THROUGHPUT, CARTPOLE_WALLCLOCK, INVERTED_PENDULUM_FAST,
                        PPOConfig, train)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("preset, env_id", [
    (ACROBOT_FAST, "Acrobot-v1"), (INVERTED_PENDULUM_FAST, "InvertedPendulum-v5"),
    (CARTPOLE_WALLCLOCK, "CartPole-v1"), (CARTPOLE_THROUGHPUT, "CartPole-v1")])
def test_presets_are_valid_configs(preset, env_id):
    config = PPOConfig(env_id=env_id, **preset)
    assert config.num_iterations >= 100  # enough updates for the learning-rate schedule to matter
    assert config.num_iterations * config.batch_size >= 0.9 * config.total_timesteps


def test_acrobot_preset_is_cartpole_preset_on_another_budget():
    assert {k: v for k, v in ACROBOT_FAST.items() if k != "total_timesteps"} == \
        {k: v for k, v in CARTPOLE_FAST.items() if k != "total_timesteps"}
    assert ACROBOT_FAST["total_timesteps"] == 100_000


def test_continuous_preset_normalizes():
    assert INVERTED_PENDULUM_FAST["norm_obs"] and INVERTED_PENDULUM_FAST["norm_reward"]


@pytest.mark.slow
def test_acrobot_preset_learns():
    # Random policy: -499.2; CleanRL's PPO after 500k steps: -86.36. Seeds 1000-1005 gave -82.7 to -86.4.
    result = train(PPOConfig(env_id="Acrobot-v1", seed=11, progress=False, **ACROBOT_FAST))
    assert result.last_mean() > -100.0


@pytest.mark.slow
def test_inverted_pendulum_preset_learns():
    pytest.importorskip("mujoco")
    result = train(PPOConfig(env_id="InvertedPendulum-v5", seed=11, progress=False, **INVERTED_PENDULUM_FAST))
    # A random policy keeps the pole up for about 5-10 steps; a solved episode lasts 1000. The last-100 mean lags
    # (100 episodes of 1000 steps span 100k steps), so look at the last 20 episodes too.
    assert result.last_mean() > 500.0
    assert np.mean(result.episode_returns[-20:]) > 900.0
