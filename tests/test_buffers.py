"""rlcore.buffers: the on-policy Rollout (storage [T, N] and `bootstrap`, whose truncation rule is the
trap) and the ReplayBuffer ring (contents, sampling, state round trip).

The Rollout is filled from a real vector env, rlcore/Counter-v0 under a time limit, whose observations
are all distinct, so "V(the observation step t really led to)" can be checked for every row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlcore.buffers import ReplayBuffer, Rollout
from rlcore.checkpoint import load_checkpoint, save_checkpoint
from rlcore.envs import make_vector

COUNTER = "rlcore/Counter-v0"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: extra intra-op threads only contend for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def value_fn(obs: torch.Tensor) -> torch.Tensor:
    """A made-up V that differs for every Counter observation [t, last_action, length]: [B, 3] -> [B]."""
    return obs[..., 0] * 100.0 + obs[..., 1] * 10.0 + obs[..., 2]


def collect(rollout: Rollout, envs, obs: np.ndarray, rng: np.random.Generator):
    """Fill `rollout` with T steps of random actions; return (next obs, final_obs [T, N, 3], infos)."""
    finals = []
    for t in range(rollout.num_steps):
        obs_t = torch.as_tensor(obs)
        actions = torch.as_tensor(rng.integers(0, 2, size=rollout.num_envs))
        obs, rewards, terminated, truncated, info = envs.step(actions.numpy())
        rollout.add(t, obs_t, actions, torch.zeros(rollout.num_envs), value_fn(obs_t), rewards, terminated,
                    truncated, info["final_obs"])
        finals.append(info["final_obs"].copy())
    return obs, np.stack(finals)


def test_bootstrap_uses_the_observation_each_step_led_to():
    T, N = 9, 4
    rng = np.random.default_rng(0)
    rollout = Rollout(T, N, (3,), (), continuous=False)
    # Episodes of 2 to 6 steps cut at 3: terminations, truncations, and both at once (length 3).
    with make_vector(COUNTER, N, seed=0, max_episode_steps=3) as envs:
        obs, _ = envs.reset()
        truncated_seen = 0
        for _ in range(2):  # the second rollout reuses the storage: nothing of the first may leak
            obs, finals = collect(rollout, envs, obs, rng)
            next_values = rollout.bootstrap(value_fn, torch.as_tensor(obs))
            assert next_values is rollout.next_values and next_values.shape == (T, N)
            expected = value_fn(torch.as_tensor(finals))  # [T, N]: V(s_{t+1}), s_{t+1} the real next state
            live = ~rollout.terminated  # a terminated row's next value is never used
            torch.testing.assert_close(next_values[live], expected[live], rtol=0, atol=0)
            # The last row bootstraps from the observation after the rollout (unless it ended).
            ended = (rollout.terminated[-1] | rollout.truncated[-1]).numpy()
            torch.testing.assert_close(next_values[-1, ~ended], value_fn(torch.as_tensor(obs[~ended])))
            truncated_seen += int((rollout.truncated & ~rollout.terminated).sum())
        assert truncated_seen >= 4, "the test must exercise truncation"


def test_truncated_row_does_not_bootstrap_from_the_next_episode():
    # One env, episodes of exactly 5 steps cut at 2: every episode is truncated at t = 1, 3, 5, ...
    rollout = Rollout(4, 1, (3,), (), continuous=False)
    with make_vector(COUNTER, 1, seed=0, max_episode_steps=2, min_length=5, max_length=5) as envs:
        obs, _ = envs.reset()
        obs, finals = collect(rollout, envs, obs, np.random.default_rng(1))
    assert rollout.truncated[:, 0].tolist() == [False, True, False, True]
    next_values = rollout.bootstrap(value_fn, torch.as_tensor(obs))
    # Truncated at t = 1: the final observation has t = 2, not the next episode's t = 0.
    assert finals[1, 0, 0] == 2.0
    assert next_values[1, 0] == value_fn(torch.as_tensor(finals[1]))[0]
    assert next_values[1, 0] != rollout.values[2, 0]


def test_rollout_stores_every_field():
    T, N = 3, 2
    rollout = Rollout(T, N, (3,), (2,), continuous=True)
    assert rollout.actions.dtype == torch.float32 and rollout.actions.shape == (T, N, 2)
    assert rollout.obs.shape == (T, N, 3) and rollout.terminated.dtype == torch.bool
    for t in range(T):
        rollout.add(t, torch.full((N, 3), float(t)), torch.full((N, 2), -float(t)), torch.full((N,), 0.5 * t),
                    torch.full((N,), 2.0 * t), np.array([t, -t], dtype=np.float32), np.array([t == 1, False]),
                    np.array([False, t == 2]), np.zeros((N, 3), dtype=np.float32))
    assert rollout.obs[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert rollout.actions[:, 1, 1].tolist() == [0.0, -1.0, -2.0]
    assert rollout.logprobs[:, 0].tolist() == [0.0, 0.5, 1.0] and rollout.values[:, 1].tolist() == [0.0, 2.0, 4.0]
    assert rollout.rewards[:, 1].tolist() == [0.0, -1.0, -2.0]
    assert rollout.terminated[:, 0].tolist() == [False, True, False]
    assert rollout.truncated[:, 1].tolist() == [False, False, True]
    discrete = Rollout(T, N, (3,), (), continuous=False)
    assert discrete.actions.dtype == torch.int64 and discrete.actions.shape == (T, N)


# ---------------------------------------------------------------------------------------------
# ReplayBuffer
# ---------------------------------------------------------------------------------------------


def transitions(ids: np.ndarray) -> tuple:
    """A batch of transitions whose every field encodes its id, so sampled rows can be checked for
    consistency: obs [n, 2] = (id, -id), next_obs = obs + 1, action id % 3, reward id / 2, terminated id % 2."""
    ids = np.asarray(ids)
    obs = np.stack([ids, -ids], axis=1).astype(np.float32)
    return obs, ids % 3, (ids / 2).astype(np.float32), obs + 1, (ids % 2).astype(bool)


def test_replay_keeps_the_last_capacity_transitions():
    buffer = ReplayBuffer(10, (2,))
    assert len(buffer) == 0
    stored: list[int] = []
    for start, n in [(0, 4), (4, 4), (8, 3), (11, 4), (15, 1), (16, 7)]:
        ids = np.arange(start, start + n)
        buffer.add(*transitions(ids))
        stored = (stored + ids.tolist())[-10:]
        assert len(buffer) == len(stored)
    assert sorted(buffer.obs[:, 0].astype(int).tolist()) == sorted(stored)
    # Ring order: the slot of transition k is k % capacity.
    np.testing.assert_array_equal(buffer.obs[:, 0].astype(int) % 10, np.arange(10))


def test_replay_sample_rows_are_whole_transitions():
    buffer = ReplayBuffer(50, (2,))
    buffer.add(*transitions(np.arange(30)))
    batch = buffer.sample(256, np.random.default_rng(0))
    assert set(batch) == {"obs", "actions", "rewards", "next_obs", "terminated"}
    assert batch["obs"].shape == (256, 2) and batch["obs"].dtype == torch.float32
    assert batch["actions"].dtype == torch.int64 and batch["rewards"].dtype == torch.float32
    assert batch["terminated"].dtype == torch.float32  # used as (1 - terminated) in the TD target
    ids = batch["obs"][:, 0]
    assert ids.max() < 30  # never an empty slot
    torch.testing.assert_close(batch["obs"][:, 1], -ids)
    torch.testing.assert_close(batch["next_obs"], batch["obs"] + 1)
    torch.testing.assert_close(batch["actions"], ids.long() % 3)
    torch.testing.assert_close(batch["rewards"], ids / 2)
    torch.testing.assert_close(batch["terminated"], ids % 2)


def test_replay_samples_uniformly():
    buffer = ReplayBuffer(8, (2,))
    buffer.add(*transitions(np.arange(5)))  # 5 of 8 slots filled
    n = 50_000
    ids = buffer.sample(n, np.random.default_rng(1))["obs"][:, 0].long().numpy()
    counts = np.bincount(ids, minlength=8)
    assert counts[5:].sum() == 0
    sd = math.sqrt(n * 0.2 * 0.8)
    assert np.all(np.abs(counts[:5] - n * 0.2) <= 5 * sd), counts


def test_replay_sampling_follows_the_generator():
    buffer = ReplayBuffer(20, (2,))
    buffer.add(*transitions(np.arange(20)))
    a = buffer.sample(32, np.random.default_rng(7))
    b = buffer.sample(32, np.random.default_rng(7))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_replay_errors():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    with pytest.raises(RuntimeError, match="empty replay buffer"):
        ReplayBuffer(4, (2,)).sample(1, np.random.default_rng(0))


def test_replay_state_round_trip_through_a_checkpoint(tmp_path):
    buffer = ReplayBuffer(16, (2,))
    buffer.add(*transitions(np.arange(21)))
    save_checkpoint(tmp_path / "ck.pt", {"buffer": buffer.state_dict()})
    restored = ReplayBuffer(16, (2,))
    restored.load_state_dict(load_checkpoint(tmp_path / "ck.pt")["buffer"])
    assert len(restored) == 16 and restored.pos == buffer.pos
    a, b = buffer.sample(64, np.random.default_rng(3)), restored.sample(64, np.random.default_rng(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Both continue the same ring.
    buffer.add(*transitions(np.arange(21, 25)))
    restored.add(*transitions(np.arange(21, 25)))
    np.testing.assert_array_equal(buffer.obs, restored.obs)


def test_replay_state_loaded_in_memory_is_a_copy():
    source = ReplayBuffer(8, (2,))
    source.add(*transitions(np.arange(5)))
    copy = ReplayBuffer(8, (2,))
    copy.load_state_dict(source.state_dict())
    source.add(*transitions(np.arange(100, 103)))  # must not write into the restored buffer
    assert sorted(copy.obs[:5, 0].tolist()) == [0, 1, 2, 3, 4] and len(copy) == 5
    assert np.all(copy.obs[5:] == 0)


def test_replay_state_of_another_capacity_is_refused():
    source = ReplayBuffer(8, (2,))
    source.add(*transitions(np.arange(5)))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(16, (2,)).load_state_dict(source.state_dict())
