"""The pure pieces of DQN and REINFORCE: the epsilon schedule, the TD target (termination vs truncation,
double DQN) and the masked reward-to-go, each against hand-computed cases or a naive loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcore.dqn import linear_schedule, td_target
from rlcore.reinforce import reward_to_go
from rlcore.returns import returns_to_go

# ---------------------------------------------------------------------------------------------
# linear_schedule
# ---------------------------------------------------------------------------------------------


def test_linear_schedule_endpoints_and_middle():
    assert linear_schedule(1.0, 0.05, 1000, 0) == 1.0
    assert linear_schedule(1.0, 0.05, 1000, 1000) == pytest.approx(0.05)
    assert linear_schedule(1.0, 0.05, 1000, 500) == pytest.approx(0.525)
    assert linear_schedule(1.0, 0.05, 1000, 250) == pytest.approx(0.7625)


def test_linear_schedule_stays_at_the_end_value():
    for t in (1000, 1001, 5000, 10**9):
        assert linear_schedule(1.0, 0.05, 1000, t) == 0.05
    assert linear_schedule(0.5, 0.5, 10, 3) == 0.5  # a constant schedule


def test_linear_schedule_is_monotone():
    values = [linear_schedule(1.0, 0.1, 37.5, t) for t in range(60)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert min(values) == 0.1


# ---------------------------------------------------------------------------------------------
# td_target
# ---------------------------------------------------------------------------------------------


def test_td_target_hand_computed():
    q_next = torch.tensor([[1.0, 3.0], [2.0, -1.0], [0.5, 0.25]])
    rewards = torch.tensor([1.0, 0.0, -2.0])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    y = td_target(q_next, rewards, terminated, 0.9)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 0.0 + 0.9 * 2.0, -2.0]))


def test_terminated_stops_the_bootstrap_whatever_the_next_q():
    rewards, terminated = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])
    for q_next in (torch.zeros(2, 3), torch.full((2, 3), 1e6), torch.randn(2, 3)):
        torch.testing.assert_close(td_target(q_next, rewards, terminated, 0.99), rewards)


def test_truncated_transition_still_bootstraps():
    # The replay buffer stores `terminated` only: a transition cut by the time limit arrives with
    # terminated = 0 and its real next observation, and must bootstrap like any other.
    q_next = torch.tensor([[4.0, 5.0]])
    y = td_target(q_next, torch.tensor([1.0]), torch.tensor([0.0]), 0.5)
    assert y.item() == 1.0 + 0.5 * 5.0


def test_double_dqn_picks_the_online_argmax_and_scores_it_with_the_target():
    q_target_next = torch.tensor([[10.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    q_online_next = torch.tensor([[0.0, 1.0, 0.5], [9.0, 0.0, 0.0]])  # argmax 1 and 0
    rewards, terminated = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    double = td_target(q_target_next, rewards, terminated, 1.0, q_online_next)
    torch.testing.assert_close(double, torch.tensor([0.0, 1.0 + 1.0]))  # Q_target(s', 1), Q_target(s', 0)
    plain = td_target(q_target_next, rewards, terminated, 1.0)
    torch.testing.assert_close(plain, torch.tensor([10.0, 4.0]))  # max of the target network
    # Terminated stops the double-DQN bootstrap too.
    torch.testing.assert_close(td_target(q_target_next, rewards, torch.ones(2), 1.0, q_online_next), rewards)


def test_double_dqn_with_identical_networks_is_plain_dqn():
    q = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    rewards = torch.randn(64, generator=torch.Generator().manual_seed(1))
    terminated = (torch.rand(64, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    torch.testing.assert_close(td_target(q, rewards, terminated, 0.99, q), td_target(q, rewards, terminated, 0.99))


def test_td_target_against_a_loop():
    gen = torch.Generator().manual_seed(3)
    q_t, q_o = torch.randn(50, 3, generator=gen), torch.randn(50, 3, generator=gen)
    rewards, terminated = torch.randn(50, generator=gen), (torch.rand(50, generator=gen) < 0.4).float()
    for online in (None, q_o):
        y = td_target(q_t, rewards, terminated, 0.95, online)
        for b in range(50):
            a_star = int(q_t[b].argmax()) if online is None else int(q_o[b].argmax())
            expected = rewards[b] + (0.0 if terminated[b] else 0.95 * q_t[b, a_star])
            assert y[b].item() == pytest.approx(float(expected), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# reward_to_go (REINFORCE's masked [T, N] batch of episodes)
# ---------------------------------------------------------------------------------------------


def padded_episodes(seed: int, lengths: list[int]):
    """One episode per column, padded after its end with garbage rewards (which must be ignored):
    rewards, valid [T, N] as torch tensors, and the episodes as a list of arrays."""
    rng = np.random.default_rng(seed)
    T, N = max(lengths), len(lengths)
    rewards = rng.normal(size=(T, N)) * 100  # the padding keeps its garbage
    episodes = []
    valid = np.zeros((T, N))
    for i, n in enumerate(lengths):
        rewards[:n, i] = rng.normal(size=n)
        valid[:n, i] = 1.0
        episodes.append(rewards[:n, i].copy())
    return torch.as_tensor(rewards), torch.as_tensor(valid), episodes


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_reward_to_go_equals_returns_to_go_per_column(seed, gamma):
    lengths = [7, 1, 12, 12, 3]
    rewards, valid, episodes = padded_episodes(seed, lengths)
    got = reward_to_go(rewards, valid, gamma)
    assert got.shape == rewards.shape
    for i, episode in enumerate(episodes):
        np.testing.assert_allclose(got[: lengths[i], i].numpy(), returns_to_go(episode, gamma), rtol=1e-12, atol=1e-12)
        assert torch.all(got[lengths[i]:, i] == 0)  # nothing from the padding leaks in


def test_reward_to_go_hand_computed():
    rewards = torch.tensor([[1.0], [2.0], [4.0], [99.0]])
    valid = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    expected = torch.tensor([[1 + 0.5 * 2 + 0.25 * 4], [2 + 0.5 * 4], [4.0], [0.0]])
    torch.testing.assert_close(reward_to_go(rewards, valid, 0.5), expected)


# ---------------------------------------------------------------------------------------------
# The CartPole preset and the annealed step size
# ---------------------------------------------------------------------------------------------


def test_cartpole_preset_is_a_valid_config():
    from rlcore.dqn import CARTPOLE_FAST, DQNConfig

    config = DQNConfig(**CARTPOLE_FAST)
    assert config.total_timesteps % config.num_envs == 0
    assert config.train_frequency % config.num_envs == 0 and config.target_network_frequency % config.num_envs == 0
    assert config.buffer_size >= config.total_timesteps  # the buffer keeps the whole run


@pytest.mark.parametrize("anneal", [False, True])
def test_anneal_lr_decays_the_step_size_linearly_to_zero(anneal):
    from rlcore.dqn import DQNConfig, train

    config = DQNConfig(env_id="CartPole-v1", num_envs=2, total_timesteps=4000, learning_rate=1e-3,
                       anneal_lr=anneal, learning_starts=100, train_frequency=2, batch_size=8, buffer_size=500,
                       hidden=(8,), progress=False, seed=3)
    steps, lrs = np.array(train(config).history["charts/learning_rate"]).T
    assert len(lrs) >= 3
    if anneal:
        np.testing.assert_allclose(lrs, 1e-3 * (1 - steps / 4000), rtol=1e-6)
    else:
        assert np.all(lrs == 1e-3)
