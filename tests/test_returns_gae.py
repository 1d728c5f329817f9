"""Tests of rlcore.returns.gae and lambda_returns over [T, N] rollouts, in layers:

(a) against naive per-episode loops on random rollouts with random terminated/truncated flags: the
    advantage as the forward sum of discounted TD errors, and the lambda-return as its textbook
    definition, a lambda-weighted mixture of n-step returns (an independent formula, not the
    backward recursion of the code); NumPy and torch inputs give the same answer;
(b) hand-computed cases: lam = 0 gives one-step TD errors, lam = 1 gives discounted returns that
    bootstrap only at truncation and at the end of the rollout, a terminated step ignores
    next_values, a truncated step uses them but stops the sum;
(c) bad input: a ValueError that names the problem.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcore.returns import gae, lambda_returns


def random_rollout(seed: int, T: int = 13, N: int = 5, *, consistent: bool = True):
    """A random [T, N] rollout with random episode ends.

    consistent=True makes next_values[t] = values[t + 1] wherever step t did not end an episode and is
    not the last row, as it is in a real rollout (rlcore.buffers.Rollout.bootstrap); where an episode
    ended, next_values[t] is V(final observation), here an arbitrary number. Terminated and truncated
    are drawn independently, so some steps are both (termination must win)."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < 0.15
    truncated = rng.random((T, N)) < 0.15
    if consistent:
        done = terminated | truncated
        next_values[:-1] = np.where(done[:-1], next_values[:-1], values[1:])
    return rewards, values, next_values, terminated, truncated


def segment_end(terminated, truncated, t: int, i: int) -> int:
    """The last row of the episode segment that contains row t of column i: the first k >= t where the
    episode ended, or T - 1 when it runs past the end of the rollout."""
    T = terminated.shape[0]
    for k in range(t, T):
        if terminated[k, i] or truncated[k, i]:
            return k
    return T - 1


def naive_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A_t = sum over k = t .. end of the segment of (gamma * lam)^(k - t) * delta_k, summed forwards."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            end = segment_end(terminated, truncated, t, i)
            for k in range(t, end + 1):
                bootstrap = 0.0 if terminated[k, i] else next_values[k, i]
                delta = rewards[k, i] + gamma * bootstrap - values[k, i]
                adv[t, i] += (gamma * lam) ** (k - t) * delta
    return adv


def naive_lambda_returns(rewards, values, next_values, terminated, truncated, gamma, lam):
    """G^lambda_t = (1 - lam) * sum_{n=1}^{L-1} lam^(n-1) G^(n)_t + lam^(L-1) G^(L)_t (Sutton & Barto
    eq. 12.3 truncated at the segment end), with L the steps left in the segment and
    G^(n)_t = r_t + ... + gamma^(n-1) r_{t+n-1} + gamma^n * bootstrap_{t+n-1},
    bootstrap_k = 0 if step k terminated else next_values[k]."""
    T, N = rewards.shape
    out = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            L = segment_end(terminated, truncated, t, i) - t + 1

            def n_step(n):
                k = t + n - 1
                partial = sum(gamma**j * rewards[t + j, i] for j in range(n))
                return partial + gamma**n * (0.0 if terminated[k, i] else next_values[k, i])

            mixed = sum((1 - lam) * lam ** (n - 1) * n_step(n) for n in range(1, L))
            out[t, i] = mixed + lam ** (L - 1) * n_step(L)
    return out


GAMMAS_LAMS = [(0.99, 0.95), (0.9, 0.0), (0.9, 1.0), (0.5, 0.7), (1.0, 1.0), (0.0, 0.5)]


# ---------------------------------------------------------------------------------------------
# (a) Against naive loops
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma,lam", GAMMAS_LAMS)
def test_gae_equals_forward_sum_of_td_errors(seed, gamma, lam):
    # Arbitrary next_values (not tied to values): the forward sum is the definition for any inputs.
    rollout = random_rollout(seed, consistent=False)
    np.testing.assert_allclose(gae(*rollout, gamma, lam), naive_gae(*rollout, gamma, lam), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma,lam", GAMMAS_LAMS)
def test_lambda_returns_equal_mixture_of_n_step_returns(seed, gamma, lam):
    rollout = random_rollout(seed)
    np.testing.assert_allclose(lambda_returns(*rollout, gamma, lam), naive_lambda_returns(*rollout, gamma, lam),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_torch_and_numpy_inputs_agree(seed):
    rewards, values, next_values, terminated, truncated = random_rollout(seed)
    expected_adv = gae(rewards, values, next_values, terminated, truncated, 0.97, 0.9)
    expected_ret = lambda_returns(rewards, values, next_values, terminated, truncated, 0.97, 0.9)
    for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 1e-5)]:
        as_t = [torch.as_tensor(a, dtype=dtype) for a in (rewards, values, next_values)]
        flags = [torch.as_tensor(terminated), torch.as_tensor(truncated)]  # bool tensors
        adv = gae(*as_t, *flags, 0.97, 0.9)
        ret = lambda_returns(*as_t, *flags, 0.97, 0.9)
        assert isinstance(adv, torch.Tensor) and adv.dtype == dtype and adv.shape == (13, 5)
        np.testing.assert_allclose(adv.numpy(), expected_adv, rtol=tol, atol=tol)
        np.testing.assert_allclose(ret.numpy(), expected_ret, rtol=tol, atol=tol)


def test_inputs_are_not_modified():
    rollout = random_rollout(0)
    copies = [a.copy() for a in rollout]
    gae(*rollout, 0.99, 0.95)
    lambda_returns(*rollout, 0.99, 0.95)
    for before, after in zip(copies, rollout):
        np.testing.assert_array_equal(before, after)


def test_columns_are_independent():
    # Each environment's column is computed as if it were alone: permuting columns permutes the result.
    rollout = random_rollout(5, N=6)
    perm = np.array([3, 0, 5, 1, 4, 2])
    full = gae(*rollout, 0.9, 0.8)
    permuted = gae(*(a[:, perm] for a in rollout), 0.9, 0.8)
    np.testing.assert_allclose(permuted, full[:, perm], rtol=0, atol=1e-14)
    single = gae(*(a[:, 2:3] for a in rollout), 0.9, 0.8)
    np.testing.assert_allclose(single, full[:, 2:3], rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# (b) Hand-computed cases
# ---------------------------------------------------------------------------------------------


def column(*xs, dtype=float):
    """A single-environment column [T, 1]."""
    return np.array(xs, dtype=dtype)[:, None]


def test_lam_zero_gives_one_step_td_errors():
    rewards, values, next_values, terminated, truncated = random_rollout(1, consistent=False)
    deltas = rewards + 0.9 * np.where(terminated, 0.0, next_values) - values
    np.testing.assert_allclose(gae(rewards, values, next_values, terminated, truncated, 0.9, 0.0), deltas,
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(lambda_returns(rewards, values, next_values, terminated, truncated, 0.9, 0.0),
                               deltas + values, rtol=0, atol=1e-14)


def test_lam_one_gives_discounted_returns_bootstrapped_at_truncation_and_rollout_end():
    # One column, gamma = 0.5, T = 6: an episode truncated at t = 1 (bootstrap from its final obs,
    # next_values[1] = 8), one terminated at t = 3, and one still running at the end (bootstrap from
    # next_values[5] = 16). Inside an episode next_values[t] = values[t + 1], as in a real rollout;
    # then the values telescope away and do not matter at lam = 1.
    rewards = column(1, 2, 3, 4, 5, 6)
    values = column(100, -3, 42, 7, 0.5, -9)
    next_values = column(-3, 8, 7, 999, -9, 16)
    terminated = column(0, 0, 0, 1, 0, 0, dtype=bool)
    truncated = column(0, 1, 0, 0, 0, 0, dtype=bool)
    g = 0.5
    expected = column(
        1 + g * 2 + g**2 * 8,  # t = 0: r0 + g r1 + g^2 V(final obs of the truncated episode)
        2 + g * 8,             # t = 1
        3 + g * 4,             # t = 2: the episode terminates at t = 3, no bootstrap
        4,                     # t = 3: next_values[3] = 999 is ignored
        5 + g * 6 + g**2 * 16,  # t = 4: runs past the rollout end, bootstrap from next_values[5]
        6 + g * 16,            # t = 5
    )
    ret = lambda_returns(rewards, values, next_values, terminated, truncated, g, 1.0)
    np.testing.assert_allclose(ret, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gae(rewards, values, next_values, terminated, truncated, g, 1.0),
                               expected - values, rtol=0, atol=1e-12)


def test_gae_hand_computed_with_lambda_between():
    # T = 3, gamma = 0.5, lam = 0.5, no episode end: deltas then the backward sum by hand.
    rewards, values, next_values = column(1, 0, 2), column(0.5, 1, 2), column(1, 2, 4)
    flags = column(0, 0, 0, dtype=bool)
    d = [1 + 0.5 * 1 - 0.5, 0 + 0.5 * 2 - 1, 2 + 0.5 * 4 - 2]  # [1, 0, 2]
    expected = column(d[0] + 0.25 * d[1] + 0.0625 * d[2], d[1] + 0.25 * d[2], d[2])
    np.testing.assert_allclose(gae(rewards, values, next_values, flags, flags, 0.5, 0.5), expected,
                               rtol=0, atol=1e-12)


def test_terminated_step_ignores_next_values():
    rewards, values, next_values, terminated, truncated = random_rollout(2)
    changed = next_values.copy()
    changed[terminated] += 1000.0
    for lam in (0.0, 0.7, 1.0):
        np.testing.assert_allclose(gae(rewards, values, changed, terminated, truncated, 0.9, lam),
                                   gae(rewards, values, next_values, terminated, truncated, 0.9, lam),
                                   rtol=0, atol=1e-9)


def test_terminated_and_truncated_together_count_as_terminated():
    args = column(1.0), column(0.0), column(50.0)
    both = gae(*args, column(1, dtype=bool), column(1, dtype=bool), 0.9, 0.9)
    np.testing.assert_allclose(both, column(1.0))


def test_truncated_step_bootstraps_but_stops_the_sum():
    # gamma = lam = 1 to make every term visible. Truncated at t = 0: A_0 = r_0 + V(final obs) - V(s_0),
    # nothing from t = 1 (the next episode) leaks in.
    rewards, values = column(1.0, 10.0), column(0.0, 0.0)
    next_values = column(5.0, 100.0)
    terminated = column(0, 0, dtype=bool)
    truncated = column(1, 0, dtype=bool)
    adv = gae(rewards, values, next_values, terminated, truncated, 1.0, 1.0)
    np.testing.assert_allclose(adv, column(1.0 + 5.0, 10.0 + 100.0))
    # Without the truncation flag the sum would continue: A_0 = delta_0 + delta_1.
    not_cut = gae(rewards, values, next_values, terminated, column(0, 0, dtype=bool), 1.0, 1.0)
    np.testing.assert_allclose(not_cut[0], (1.0 + 5.0) + (10.0 + 100.0))


def test_truncation_is_not_termination():
    # The same step marked truncated bootstraps from next_values; marked terminated it does not.
    rewards, values, next_values = column(1.0), column(0.0), column(7.0)
    yes, no = column(1, dtype=bool), column(0, dtype=bool)
    assert gae(rewards, values, next_values, no, yes, 0.9, 0.95)[0, 0] == pytest.approx(1.0 + 0.9 * 7.0)
    assert gae(rewards, values, next_values, yes, no, 0.9, 0.95)[0, 0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# (c) Bad input
# ---------------------------------------------------------------------------------------------


def test_shape_mismatch_names_the_array():
    rewards, values, next_values, terminated, truncated = random_rollout(0)
    with pytest.raises(ValueError, match="next_values"):
        gae(rewards, values, next_values[:-1], terminated, truncated, 0.9, 0.9)
    with pytest.raises(ValueError, match="truncated"):
        lambda_returns(rewards, values, next_values, terminated, truncated[:, :2], 0.9, 0.9)


def test_one_dimensional_rollout_is_rejected_with_a_hint():
    r = np.ones(5)
    flags = np.zeros(5, dtype=bool)
    with pytest.raises(ValueError, match=r"\[T, N\].*rewards\[:, None\]"):
        gae(r, r, r, flags, flags, 0.9, 0.9)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "high"])
def test_gamma_out_of_range(gamma):
    with pytest.raises(ValueError, match="gamma"):
        gae(*random_rollout(0), gamma, 0.9)


@pytest.mark.parametrize("lam", [-0.01, 1.01, float("nan")])
def test_lam_out_of_range(lam):
    with pytest.raises(ValueError, match="lam"):
        lambda_returns(*random_rollout(0), 0.9, lam)
