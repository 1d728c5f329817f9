"""rlcore.normalize: running statistics combined batch by batch must equal the statistics of everything
at once, and the reward scaler's per-environment discounted return must restart when an episode ends."""

from __future__ import annotations

import numpy as np
import pytest

from rlcore.normalize import ObsNormalizer, RewardScaler, RunningMeanStd


def unequal_batches(seed: int, shape: tuple[int, ...] = (3,)) -> list[np.ndarray]:
    """Batches of sizes 1 to 300 with different means and scales: averaging batch means would be wrong."""
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 300, 2, 45, 1, 128]
    return [rng.normal(loc=rng.uniform(-5, 5), scale=rng.uniform(0.1, 4), size=(n, *shape)) for n in sizes]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(3,), (), (2, 2)])
def test_running_stats_equal_the_stats_of_the_concatenation(seed, shape):
    batches = unequal_batches(seed, shape)
    stats = RunningMeanStd(shape, epsilon=0.0)  # no prior count: exact
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.var, everything.var(axis=0), rtol=1e-10, atol=1e-12)
    assert stats.count == len(everything)


def test_the_default_prior_count_barely_matters():
    batches = unequal_batches(7)
    stats = RunningMeanStd((3,))
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var, everything.var(axis=0), rtol=1e-4)
    assert stats.count == pytest.approx(len(everything) + 1e-4)


def test_batch_order_does_not_matter():
    batches = unequal_batches(1)
    forward, backward = RunningMeanStd((3,), epsilon=0.0), RunningMeanStd((3,), epsilon=0.0)
    for batch in batches:
        forward.update(batch)
    for batch in reversed(batches):
        backward.update(batch)
    np.testing.assert_allclose(forward.mean, backward.mean, rtol=1e-12)
    np.testing.assert_allclose(forward.var, backward.var, rtol=1e-10)


def test_wrong_feature_shape_is_rejected():
    with pytest.raises(ValueError, match=r"shape \(3,\).*\[B, 3\]"):
        RunningMeanStd((3,)).update(np.zeros((5, 4)))


def test_running_stats_state_round_trip():
    stats = RunningMeanStd((3,))
    stats.update(unequal_batches(2)[2])
    restored = RunningMeanStd((3,))
    restored.load_state_dict(stats.state_dict())
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.var, stats.var)
    assert restored.count == stats.count
    stats.update(np.ones((4, 3)))  # the saved state is a copy
    assert not np.array_equal(restored.mean, stats.mean)


# ---------------------------------------------------------------------------------------------
# ObsNormalizer
# ---------------------------------------------------------------------------------------------


def test_obs_normalizer_standardizes_and_clips():
    rng = np.random.default_rng(0)
    norm = ObsNormalizer((2,), clip=3.0)
    seen = []
    for _ in range(20):
        obs = rng.normal(loc=[10.0, -4.0], scale=[2.0, 0.5], size=(32, 2))
        out = norm(obs)
        seen.append(obs)
    everything = np.concatenate(seen)
    expected = (obs - norm.stats.mean) / np.sqrt(norm.stats.var + 1e-8)
    np.testing.assert_allclose(out, np.clip(expected, -3, 3), rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(norm.stats.mean, everything.mean(axis=0), rtol=1e-4)
    far = norm(np.array([[1e6, -1e6]]), update=False)
    np.testing.assert_array_equal(far, [[3.0, -3.0]])


def test_obs_normalizer_without_update_leaves_the_statistics_alone():
    norm = ObsNormalizer((2,))
    norm(np.array([[1.0, 2.0], [3.0, 4.0]]))
    mean, var, count = norm.stats.mean.copy(), norm.stats.var.copy(), norm.stats.count
    norm(np.array([[100.0, 200.0]]), update=False)
    np.testing.assert_array_equal(norm.stats.mean, mean)
    np.testing.assert_array_equal(norm.stats.var, var)
    assert norm.stats.count == count


# ---------------------------------------------------------------------------------------------
# RewardScaler
# ---------------------------------------------------------------------------------------------


def naive_reward_scaling(rewards: np.ndarray, dones: np.ndarray, gamma: float, clip: float) -> np.ndarray:
    """Per env a running return G <- gamma * G + r restarted after each episode end; every G so far
    (all envs, all steps up to now) pooled; the reward divided by their standard deviation.
    rewards, dones [T, N] -> scaled [T, N]."""
    T, N = rewards.shape
    G = np.zeros(N)
    pooled: list[float] = []
    out = np.zeros((T, N))
    for t in range(T):
        for i in range(N):
            G[i] = gamma * G[i] + rewards[t, i]
        pooled.extend(G.tolist())
        out[t] = np.clip(rewards[t] / np.sqrt(np.var(pooled) + 1e-8), -clip, clip)
        G[dones[t]] = 0.0
    return out


def test_reward_scaler_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    T, N = 60, 3
    rewards = rng.normal(1.0, 2.0, size=(T, N))
    dones = rng.random((T, N)) < 0.1
    scaler = RewardScaler(N, gamma=0.9)
    scaler.stats = RunningMeanStd((), epsilon=0.0)  # without the tiny prior count, to compare exactly
    got = np.stack([scaler(rewards[t], dones[t]) for t in range(T)])
    np.testing.assert_allclose(got, naive_reward_scaling(rewards, dones, 0.9, 10.0), rtol=1e-6, atol=1e-7)


def test_reward_scaler_restarts_the_return_of_the_env_that_ended_only():
    scaler = RewardScaler(2, gamma=0.5)
    scaler(np.array([1.0, 1.0]), np.array([False, False]))
    scaler(np.array([1.0, 1.0]), np.array([True, False]))  # env 0's episode ends here
    np.testing.assert_allclose(scaler.returns, [0.0, 1.5])
    scaler(np.array([4.0, 4.0]), np.array([False, False]))
    np.testing.assert_allclose(scaler.returns, [4.0, 4.75])  # env 0 starts again from its new reward


def test_reward_scaler_only_rescales():
    # No mean is subtracted: signs are kept and the ratio between rewards of one step is unchanged.
    scaler = RewardScaler(4, gamma=0.99)
    rng = np.random.default_rng(1)
    for _ in range(50):
        rewards = rng.uniform(0.5, 3.0, size=4) * np.array([1, -1, 1, -1])
        scaled = scaler(rewards, np.zeros(4, dtype=bool))
        assert np.all(np.sign(scaled) == np.sign(rewards))
        np.testing.assert_allclose(scaled / scaled[0], rewards / rewards[0], rtol=1e-5)


def test_reward_scaler_clips():
    scaler = RewardScaler(1, gamma=0.0, clip=2.0)
    for _ in range(100):
        scaler(np.array([0.01]), np.array([False]))
    assert scaler(np.array([1000.0]), np.array([False]))[0] == 2.0
