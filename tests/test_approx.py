"""Tests of rlcore.tabular.mountain_car and rlcore.tabular.approx.

(a) the environment: the book's equations by hand, Gymnasium's unwrapped MountainCar-v0 in lockstep
    (identical floating-point states), the batch against single cars, autoreset and finished cars;
(b) exact math: q values and the semi-gradient step against naive loops;
(c) the learners: one-step Sarsa == n-step Sarsa with n = 1 == the batched learner with one run,
    step for step; n-step Sarsa against a literal transcription of the book's pseudocode that keeps
    whole episodes (no ring buffer), including episodes shorter than n;
(d) determinism with seeds, and a statistical smoke test against the book's numbers;
(e) bad input: clear errors.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from rlcore.tabular import approx, mountain_car
from rlcore.tabular.approx import (
    greedy_action,
    n_step_sarsa,
    q_values,
    run_sarsa,
    sarsa_update,
    semi_gradient_sarsa,
)
from rlcore.tabular.mountain_car import MountainCar, MountainCarBatch, step_dynamics
from rlcore.tabular.tiles import MOUNTAIN_CAR_CODER, active_tiles


class RecordingCar(MountainCar):
    """MountainCar that records the length of every finished episode."""

    def __init__(self, rng=None):
        super().__init__(rng)
        self.lengths: list[int] = []
        self._steps = 0

    def reset(self, **kwargs):
        self._steps = 0
        return super().reset(**kwargs)

    def step(self, action):
        self._steps += 1
        out = super().step(action)
        if out[2]:
            self.lengths.append(self._steps)
        return out


def spawned(seed: int):
    """The (env, agent) generators run_sarsa spawns from a seed."""
    return np.random.default_rng(seed).spawn(2)


# ---------------------------------------------------------------------------------------------
# (a) The environment
# ---------------------------------------------------------------------------------------------


def test_one_step_by_hand():
    x, v = -0.5, 0.01
    pos, vel, term = step_dynamics(x, v, 2)  # full throttle forward
    want_v = v + 0.001 - 0.0025 * math.cos(3 * x)
    assert vel == pytest.approx(want_v, abs=1e-15) and pos == pytest.approx(x + want_v, abs=1e-15) and not term


def test_bounds_left_wall_and_goal():
    # Velocity is clipped to 0.07; the left wall stops the car; reaching 0.5 terminates.
    pos, vel, term = step_dynamics(np.array([-0.5, -1.19, 0.49]), np.array([0.0699, -0.07, 0.07]), np.array([2, 0, 2]))
    assert vel[0] == 0.07
    assert pos[1] == -1.2 and vel[1] == 0.0 and not term[1]
    assert pos[2] == 0.5 and term[2]


def test_single_car_matches_step_dynamics_and_starts_in_range():
    env = MountainCar(rng=np.random.default_rng(0))
    starts = [env.reset()[0][0] for _ in range(2000)]
    assert min(starts) >= -0.6 and max(starts) < -0.4 and np.std(starts) == pytest.approx(0.2 / math.sqrt(12), rel=0.1)
    obs, _ = env.reset()
    rng = np.random.default_rng(1)
    for _ in range(500):
        a = int(rng.integers(3))
        want = step_dynamics(obs[0], obs[1], a)
        obs, reward, terminated, truncated, _ = env.step(a)
        assert (obs[0], obs[1], terminated) == (want[0], want[1], want[2]) and reward == -1.0 and not truncated
        if terminated:
            obs, _ = env.reset()


@pytest.mark.parametrize("policy", ["noisy", "energy"])
def test_lockstep_with_gymnasium_unwrapped(policy):
    """Gymnasium's MountainCar-v0 without its TimeLimit follows the same states to the last bit,
    terminates on the same step, and pays the same reward. (Only the final position differs:
    Gymnasium lets the car run past 0.5, the book clips it there.)"""
    gym_env = gym.make("MountainCar-v0").unwrapped
    rng = np.random.default_rng(2)
    compared = 0
    for episode in range(6):
        gym_env.reset(seed=episode)
        ours = MountainCar()
        ours.reset()
        ours.position = float(gym_env.state[0])  # the same start
        batch = MountainCarBatch(1, np.random.default_rng(0))
        batch.reset()
        batch.position[:] = ours.position
        for t in range(20_000):
            a = 2 if ours.velocity >= 0 else 0  # pump energy: push the way the car moves
            if policy == "noisy" and rng.random() < 0.3:
                a = int(rng.integers(3))
            obs, reward, terminated, truncated, _ = ours.step(a)
            g_obs, g_reward, g_terminated, g_truncated, _ = gym_env.step(a)
            b_obs, b_reward, b_terminated, _, b_info = batch.step(np.array([a]))
            assert terminated == g_terminated == b_terminated[0] and reward == g_reward == b_reward[0] == -1.0
            assert not truncated and not g_truncated
            if terminated:
                assert obs[0] == 0.5 and g_obs[0] >= 0.5 and b_info["final_obs"][0, 0] == 0.5
                assert b_info["episode_length"][0] == t + 1
                break
            assert obs[0] == gym_env.state[0] and obs[1] == gym_env.state[1], (episode, t)
            np.testing.assert_array_equal(b_obs[0], obs)
            np.testing.assert_array_equal(g_obs, obs.astype(np.float32))  # Gymnasium reports float32
            compared += 1
        else:
            pytest.fail("the episode did not end")
    assert compared > 500


def test_gymnasium_registered_version_is_cut_at_200_steps():
    env = gym.make("MountainCar-v0")
    env.reset(seed=0)
    for t in range(1, 201):
        _, _, terminated, truncated, _ = env.step(1)  # no throttle: never reaches the goal
        if terminated or truncated:
            break
    assert t == 200 and truncated and not terminated


def test_batch_autoreset_counters_and_finished_cars():
    env = MountainCarBatch(3, np.random.default_rng(4), n_episodes=2)
    obs, _ = env.reset()
    assert obs.shape == (3, 2) and np.all(obs[:, 1] == 0)
    steps = np.zeros(3, dtype=int)
    lengths = [[], [], []]
    energy = lambda o: np.where(o[:, 1] >= 0, 2, 0)  # noqa: E731  reaches the goal in ~100-200 steps
    while not env.all_finished:
        before_finished = env.finished.copy()
        obs, rewards, terminated, truncated, info = env.step(energy(obs))
        assert not truncated.any()
        np.testing.assert_array_equal(rewards, np.where(before_finished, 0.0, -1.0))
        steps += ~before_finished
        for r in np.flatnonzero(terminated):
            lengths[r].append(steps[r])
            assert info["episode_length"][r] == steps[r] and info["final_obs"][r, 0] == 0.5
            steps[r] = 0
            if len(lengths[r]) < 2:  # same-step autoreset: already at the next start, at rest
                assert -0.6 <= obs[r, 0] < -0.4 and obs[r, 1] == 0.0
            else:  # finished: frozen at the goal
                assert obs[r, 0] == 0.5
    np.testing.assert_array_equal(env.episode_lengths, np.array(lengths).T)
    frozen = env.step(np.array([0, 0, 0]))
    assert (frozen[1] == 0).all() and not frozen[2].any()


def test_batch_of_one_is_a_single_car_with_the_same_generator():
    batch = MountainCarBatch(1, np.random.default_rng(9), n_episodes=3)
    single = MountainCar(rng=np.random.default_rng(9))
    b_obs, _ = batch.reset()
    s_obs, _ = single.reset()
    rng = np.random.default_rng(10)
    while not batch.all_finished:
        np.testing.assert_array_equal(b_obs[0], s_obs)
        a = 2 if s_obs[1] >= 0 else int(rng.integers(2))
        b_obs, *_, b_term, _, _ = batch.step(np.array([a]))[:5]
        s_obs, _, s_term, _, _ = single.step(a)
        if s_term and batch.episode[0] < 3:
            s_obs, _ = single.reset()


def test_environment_errors():
    env = MountainCar(rng=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(1)
    env.reset()
    with pytest.raises(ValueError, match="not one of 0"):
        env.step(3)
    with pytest.raises(ValueError, match="integers"):
        env.step(1.5)
    env.position = 0.5
    with pytest.raises(RuntimeError, match="after the episode terminated"):
        env.step(1)
    batch = MountainCarBatch(2, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="before reset"):
        batch.step(np.array([1, 1]))
    batch.reset()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        batch.step(np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="n_cars"):
        MountainCarBatch(0, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# (b) exact math
# ---------------------------------------------------------------------------------------------


def test_q_values_and_update_match_loops():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 3, 880))  # 4 runs
    tiles = MOUNTAIN_CAR_CODER(rng.uniform([-1.2, -0.07], [0.5, 0.07], size=(4, 2)))  # [4, 8]
    q = q_values(w, tiles)
    for r in range(4):
        for a in range(3):
            assert q[r, a] == pytest.approx(sum(w[r, a, i] for i in tiles[r]))
    actions, targets, alpha = np.array([0, 2, 1, 2]), rng.normal(size=4), 0.1
    want = w.copy()
    for r in range(4):
        error = targets[r] - sum(want[r, actions[r], i] for i in tiles[r])
        for i in tiles[r]:
            want[r, actions[r], i] += alpha * error
    got = sarsa_update(w.copy(), tiles, actions, targets, alpha)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # one run, no batch axis; in place
    w1 = w[1].copy()
    out = sarsa_update(w1, tiles[1], actions[1], targets[1], alpha)
    assert out is w1
    np.testing.assert_allclose(w1, want[1], atol=1e-12)


def test_one_update_moves_q_alpha_times_tilings_of_the_way():
    w = np.zeros((3, 880))
    tiles = active_tiles(-0.5, 0.0)
    sarsa_update(w, tiles, 2, -1.0, 0.5 / 8)
    assert q_values(w, tiles)[2] == pytest.approx(-0.5)  # 8 tiles x 0.5/8: half of the error
    assert np.count_nonzero(w) == 8


def test_greedy_action_breaks_ties_uniformly():
    w = np.zeros((3, 880))
    tiles = active_tiles(-0.5, 0.0)
    rng = np.random.default_rng(6)
    counts = np.bincount([greedy_action(w, tiles, rng) for _ in range(6000)], minlength=3)
    assert np.all(np.abs(counts - 2000) < 5 * math.sqrt(6000 * (1 / 3) * (2 / 3)))
    w[1, tiles[0]] = 0.1
    assert greedy_action(w, tiles, rng) == 1


# ---------------------------------------------------------------------------------------------
# (c) the learners, step for step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_one_step_sarsa_equals_n_step_with_n_1_and_the_batch(seed):
    lengths, weights = [], []
    for learner in ("one-step", "n-step"):
        env_rng, agent_rng = spawned(seed)
        env = RecordingCar(env_rng)
        if learner == "one-step":
            w = semi_gradient_sarsa(env, 4, 0.5 / 8, agent_rng)
        else:
            w = n_step_sarsa(env, 4, 1, 0.5 / 8, agent_rng)
        lengths.append(env.lengths)
        weights.append(w)
    batch = run_sarsa(1, 4, 0.5 / 8, 1, seed=seed)
    assert lengths[0] == lengths[1] == batch.episode_lengths[:, 0].tolist()
    np.testing.assert_array_equal(weights[0], weights[1])
    np.testing.assert_array_equal(weights[0], batch.w[0])


@pytest.mark.parametrize("n, alpha", [(2, 0.5 / 8), (4, 0.3 / 8), (16, 0.2 / 8)])
def test_n_step_sarsa_equals_the_batch_with_one_run(n, alpha):
    env_rng, agent_rng = spawned(3)
    env = RecordingCar(env_rng)
    w = n_step_sarsa(env, 3, n, alpha, agent_rng)
    batch = run_sarsa(1, 3, alpha, n, seed=3)
    assert env.lengths == batch.episode_lengths[:, 0].tolist()
    np.testing.assert_array_equal(w, batch.w[0])


def test_alpha_per_run():
    """A step size per run: an array of equal alphas is the scalar alpha, step for step, and
    mixed alphas give each run its own (smaller steps learn more slowly: book ep. 1 1548 vs 3458)."""
    scalar = run_sarsa(4, 2, 0.5 / 8, seed=7)
    array = run_sarsa(4, 2, np.full(4, 0.5 / 8), seed=7)
    np.testing.assert_array_equal(scalar.episode_lengths, array.episode_lengths)
    np.testing.assert_array_equal(scalar.w, array.w)
    mixed = run_sarsa(8, 1, np.repeat([0.5 / 8, 0.1 / 8], 4), seed=7)
    assert mixed.episode_lengths[0, 4:].mean() > mixed.episode_lengths[0, :4].mean()


def book_n_step_sarsa(env, n_episodes, n, alpha, rng, tiles_fn):
    """The book's pseudocode (p. 247) transcribed literally: whole-episode lists, T = infinity."""
    w = np.zeros((3, 880))

    def q(s, a):
        return w[a, s].sum()

    def choose(s):
        return int(approx._choose(q_values(w, s)[None], 0.0, rng)[0])

    for _ in range(n_episodes):
        obs, _ = env.reset()
        S, A, R = [np.asarray(tiles_fn(*obs))], [], [0.0]
        A.append(choose(S[0]))
        T, t = math.inf, 0
        while True:
            if t < T:
                obs, reward, terminated, _, _ = env.step(A[t])
                R.append(reward)
                if terminated:
                    T = t + 1
                else:
                    S.append(np.asarray(tiles_fn(*obs)))
                    A.append(choose(S[t + 1]))
            tau = t - n + 1
            if tau >= 0:
                G = sum(R[i] for i in range(tau + 1, min(tau + n, T) + 1))
                if tau + n < T:
                    G += q(S[tau + n], A[tau + n])
                w[A[tau], S[tau]] += alpha * (G - q(S[tau], A[tau]))
            if tau == T - 1:
                break
            t += 1
    return w


@pytest.mark.parametrize("n", [1, 3, 8, 40])
def test_n_step_sarsa_is_the_books_pseudocode(n, monkeypatch):
    # Starts close to the goal give short episodes, some shorter than n = 40.
    monkeypatch.setattr(mountain_car, "START_LOW", 0.3)
    monkeypatch.setattr(mountain_car, "START_HIGH", 0.45)
    results = []
    for learner in (n_step_sarsa, book_n_step_sarsa):
        env_rng, agent_rng = spawned(11)
        env = RecordingCar(env_rng)
        results.append((learner(env, 12, n, 0.3 / 8, agent_rng, tiles_fn=active_tiles)
                        if learner is n_step_sarsa else learner(env, 12, n, 0.3 / 8, agent_rng, active_tiles), env.lengths))
    (w_ours, len_ours), (w_book, len_book) = results
    assert len_ours == len_book
    if n == 40:
        assert min(len_ours) < n  # the flush after a short episode was exercised
    np.testing.assert_allclose(w_ours, w_book, atol=1e-12)
    # The batched learner, with the same short episodes.
    batch = run_sarsa(1, 12, 0.3 / 8, n, seed=11)
    assert batch.episode_lengths[:, 0].tolist() == len_ours
    np.testing.assert_allclose(batch.w[0], w_book, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# (d) determinism and a statistical smoke test
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_run_other_seed_other_run():
    a = run_sarsa(3, 2, 0.5 / 8, seed=1)
    b = run_sarsa(3, 2, 0.5 / 8, seed=np.random.SeedSequence(1))
    c = run_sarsa(3, 2, 0.5 / 8, seed=2)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.array_equal(a.episode_lengths, c.episode_lengths)


def test_first_50_episodes_match_the_book():
    """Figure 10.3, n = 1, alpha = 0.5/8: 284.4 steps per episode over episodes 1-50
    (published_results.md 1b). One run's 50-episode mean has an SD of about 5, so 40 runs have
    an SE of about 0.8; the bound, 6 steps, is more than 7 SE."""
    run = run_sarsa(40, 50, 0.5 / 8, seed=123)
    assert abs(run.per_run(1, 50).mean() - 284.4) < 6
    assert run.mean_steps()[0] > 900  # the first episode is long: about 1550 steps on average


# ---------------------------------------------------------------------------------------------
# (e) bad input
# ---------------------------------------------------------------------------------------------


def test_bad_arguments_are_reported():
    env = MountainCar(rng=np.random.default_rng(0))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        semi_gradient_sarsa(env, 1, 0.0, rng)
    with pytest.raises(ValueError, match="n must be a whole number"):
        n_step_sarsa(env, 1, 0, 0.1, rng)
    with pytest.raises(ValueError, match="one row per action"):
        semi_gradient_sarsa(env, 1, 0.1, rng, w=np.zeros(880))
    with pytest.raises(ValueError, match="alpha must be a positive"):
        run_sarsa(2, 1, np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="outside"):
        run_sarsa(2, 1, 0.1).per_run(1, 2)


def test_runs_that_pass_the_step_limit_are_marked_trapped():
    run = run_sarsa(3, 2, 0.5 / 8, seed=0, max_episode_steps=300)  # a first episode takes ~1500 steps
    assert run.trapped.all() and (run.episode_lengths == 0).all()
    assert np.all(run.final_obs[:, 0] < 0.5) and run.per_run(1, 2).size == 0
    free = run_sarsa(3, 2, 0.5 / 8, seed=0)
    assert not free.trapped.any() and np.all(free.final_obs[:, 0] == 0.5)
