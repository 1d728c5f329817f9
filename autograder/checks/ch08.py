"""Checks for chapter 08, deep Q-networks.

Unit checks compare the learner's pieces with `rlcore.dqn` and `rlcore.buffers` on hand-computed
cases (smallest first, each naming the mistake it catches) and on random cases:

- `linear_schedule`: the epsilon schedule at the ends, in the middle, past the end, and on random
  (start, end, duration, t) against `rlcore.dqn.linear_schedule`;
- `epsilon_greedy`: greedy rows at epsilon 0, and at epsilon > 0 the frequency of every action over
  20,000 rows against 1 - epsilon + epsilon / A (greedy) and epsilon / A (each other action), within
  5 standard errors; the same seed must give the same actions (no global random state);
- `replay_next_obs`: what the replay buffer stores after a step of rlcore's SAME-STEP autoreset
  protocol: info["final_obs"] where an episode ended (not the next episode's first observation) and a
  terminal flag from `terminated` only (a time limit is not a terminal state); hand-built steps and
  real steps of the fast CartPole;
- `td_target`: against `rlcore.dqn.td_target`, DQN and double DQN, hand cases first;
- `dqn_loss`: the Huber loss of Q(s, a) gathered for the taken actions against the target network's
  TD target, its value and its gradient against rlcore's, and no gradient reaching the target network;
- `ReplayBuffer`: exact contents after the ring wraps (each sampled row is one stored transition, only
  the last `capacity` ones), and a chi-square test of uniform sampling.

The curve check `train_dqn` runs the learner's whole loop with `autograder.deeprl.curve_check` on
CartPole-v1 and grades the last-100 training-episode mean by non-inferiority. CleanRL's DQN (section 2
of published_results.md, 488.69 at 500k steps) is out of reach within the budget (7 seeds in 170 s):
our rlcore runs of the exercise's settings (autograder/references/ch08_dqn.json, made by gen_ch08.py)
end between 103 and 500 at 200k steps, so the pass line is section 6.4 applied to our own runs (mean
minus twice their SD), floored at the random policy's return plus section 6.4's smallest margin
(`pass_line`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from autograder import deeprl, stats
from autograder.protocol import Check, LearnerCodeError, describe
from rlcore import dqn as ref
from rlcore.nets import QNetwork

LESSON = "lesson 08 (course/08_dqn.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch08_dqn.json"
SECTIONS = {"q": "7. When the curve is wrong: Q-values", "epsilon": "8. When the curve is wrong: epsilon",
            "flat": "9. When the curve is wrong: flat returns", "nan": "10. When the curve is wrong: NaN",
            "speed": "11. When the loop is slow"}
FREQ_Z = 5.0  # standard errors allowed on the frequency of a random choice
TOL = 1e-5  # float32 targets and losses


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our reference runs and the calibration (autograder/references/ch08_dqn.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def _close(a, b, tol: float = TOL) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


def _numpy(value):
    """A learner's tensor (any device, maybe with a gradient) or array-like as a NumPy value."""
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    return value


# =============================================================================================
# linear_schedule
# =============================================================================================

SCHEDULE_CASES = [
    ((1.0, 0.05, 1000, 0), "epsilon starts at start_e"),
    ((1.0, 0.05, 1000, 500), "half way: (1.0 + 0.05) / 2 = 0.525"),
    ((1.0, 0.05, 1000, 250), "a quarter of the way: 1.0 - 0.25 * 0.95 = 0.7625"),
    ((1.0, 0.05, 1000, 999), "one step before the end: 0.05095, not yet end_e"),
    ((1.0, 0.05, 1000, 1000), "at t = duration epsilon is end_e"),
    ((1.0, 0.05, 1000, 5000), "after the decay epsilon stays at end_e (it does not keep falling)"),
    ((0.5, 0.1, 20_000, 7_500), "other ends: 0.5 - 0.375 * 0.4 = 0.35"),
    ((0.3, 0.3, 10, 3), "start_e = end_e is a constant schedule"),
]


def linear_schedule(fn) -> None:
    """Grade `linear_schedule(start_e, end_e, duration, t)` against rlcore.dqn.linear_schedule."""
    with Check("ch08.linear_schedule", "the linear epsilon schedule",
               hint=("frac = min(t / duration, 1); epsilon = start_e + frac * (end_e - start_e). t is the "
                     f"global environment step, and epsilon stays at end_e once t >= duration ({LESSON}, "
                     "section 3).")) as check:
        fn = check.signature(fn, "start_e", "end_e", "duration", "t")
        cases = [(args, why) for args, why in SCHEDULE_CASES]
        rng = np.random.default_rng(808)
        for _ in range(40):
            start = float(rng.uniform(0.2, 1.0))
            end = float(rng.uniform(0.0, start))
            duration = float(rng.integers(10, 100_000))
            t = int(rng.integers(0, int(2 * duration)))
            cases.append(((start, end, duration, t), "a random case"))
        for (start, end, duration, t), why in cases:
            what = f"linear_schedule({start:g}, {end:g}, {duration:g}, t={t})"
            got = check.array(check.call(fn, start, end, duration, t, what=what), what, shape=())
            want = ref.linear_schedule(start, end, duration, t)
            if not check.expect(abs(float(got) - want) <= 1e-9, what, f"{why}: expected {want:.6g}, got {float(got):.6g}."):
                return
        check.note("exact at the ends, in the middle, after the decay, and on 40 random cases")


# =============================================================================================
# epsilon_greedy
# =============================================================================================


def _action_freq_case(check: Check, fn, q: torch.Tensor, epsilon: float, seed: int) -> None:
    n, n_actions = q.shape
    what = f"epsilon_greedy(q_values [{n}, {n_actions}], epsilon={epsilon:g}, rng)"
    actions = check.array(check.call(fn, q.clone(), epsilon, np.random.default_rng(seed), what=what), what,
                          shape=(n,), kind="int")
    check.require(bool(np.all((actions >= 0) & (actions < n_actions))), f"{what}: actions in range",
                  f"actions must be in 0..{n_actions - 1}; got values from {actions.min()} to {actions.max()}.")
    greedy = q.argmax(dim=1).numpy()
    p_greedy = 1 - epsilon + epsilon / n_actions
    took_greedy = float(np.mean(actions == greedy))
    se = np.sqrt(p_greedy * (1 - p_greedy) / n)
    check.require(abs(took_greedy - p_greedy) <= FREQ_Z * se + 1e-12, f"{what}: greedy share",
                  f"the greedy action was taken in {took_greedy:.3f} of the rows; expected 1 - epsilon + epsilon / A "
                  f"= {p_greedy:.3f} (+- {FREQ_Z * se:.3f}). Each row flips its own coin, and a random action is any "
                  "of the A actions, the greedy one included.")
    # Among the rows that did not take the greedy action, the others are equally likely.
    p_other = epsilon / n_actions
    for rank in range(1, n_actions):
        other = np.argsort(-q.numpy(), axis=1)[:, rank]
        share = float(np.mean(actions == other))
        se = np.sqrt(p_other * (1 - p_other) / n)
        check.require(abs(share - p_other) <= FREQ_Z * se + 1e-12, f"{what}: each non-greedy action",
                      f"the action ranked {rank + 1} by Q was taken in {share:.4f} of the rows; expected "
                      f"epsilon / A = {p_other:.4f} (+- {FREQ_Z * se:.4f}).")


def epsilon_greedy(fn) -> None:
    """Grade `epsilon_greedy(q_values, epsilon, rng)`: exact greedy rows, action frequencies, determinism."""
    with Check("ch08.epsilon_greedy", "epsilon-greedy actions for a batch of Q-values",
               hint=("For each row separately: with probability epsilon an action drawn uniformly from all A "
                     "actions (rng.integers(0, A, size=N)), else argmax over the actions (axis 1). Draw every "
                     f"random number from rng ({LESSON}, section 3).")) as check:
        fn = check.signature(fn, "q_values", "epsilon", "rng")
        q = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.25], [-3.0, -2.0]])
        what = "epsilon_greedy(q_values [4, 2], epsilon=0, rng)"
        actions = check.array(check.call(fn, q.clone(), 0.0, np.random.default_rng(0), what=what), what,
                              shape=(4,), kind="int")
        check.require(np.array_equal(actions, [1, 0, 0, 1]), "epsilon = 0 is greedy per row",
                      f"on Q = {q.tolist()} expected the argmax of each row [1, 0, 0, 1], got {actions.tolist()}.")
        q = torch.randn(300, 5, generator=torch.Generator().manual_seed(8))
        what = "epsilon_greedy(q_values [300, 5], epsilon=0, rng)"
        actions = check.array(check.call(fn, q.clone(), 0.0, np.random.default_rng(1), what=what), what,
                              shape=(300,), kind="int")
        check.require(np.array_equal(actions, q.argmax(dim=1).numpy()), "epsilon = 0 on 300 random rows",
                      f"{int(np.sum(actions != q.argmax(dim=1).numpy()))} of 300 rows are not the row's argmax.")
        q = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(9))
        _action_freq_case(check, fn, q, 1.0, 2)
        _action_freq_case(check, fn, q, 0.3, 3)
        q = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(10))
        _action_freq_case(check, fn, q, 0.5, 4)
        _action_freq_case(check, fn, q, 0.05, 5)
        what = "epsilon_greedy(q_values [20000, 4], epsilon=0.5, rng)"
        runs = [check.array(check.call(fn, q.clone(), 0.5, np.random.default_rng(77), what=what), what,
                            shape=(20_000,), kind="int") for _ in range(2)]
        check.require(np.array_equal(*runs), "the same rng seed gives the same actions",
                      "two calls with np.random.default_rng(77) gave different actions: take every random "
                      "number from rng (not np.random, random or torch's global generator).")
        check.note("greedy rows exact; action frequencies within 5 SE at epsilon 1, 0.5, 0.3 and 0.05")


# =============================================================================================
# replay_next_obs: what a transition stores under SAME-STEP autoreset
# =============================================================================================


def _step_case(seed: int, n: int = 6):
    """A hand-built step: env 1 terminated, env 2 was truncated, env 4 both, the rest continue."""
    rng = np.random.default_rng(seed)
    next_obs = rng.normal(size=(n, 4)).astype(np.float32)
    final = next_obs.copy()
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    terminated[[1, 4]] = True
    truncated[[2, 4]] = True
    ended = terminated | truncated
    final[ended] = rng.normal(size=(int(ended.sum()), 4)).astype(np.float32) + 5.0
    info = {"final_obs": final, "episode_return": np.where(ended, 10.0, np.nan),
            "episode_length": np.where(ended, 10, 0)}
    return next_obs, terminated, truncated, info


def _check_next_obs(check: Check, fn, next_obs, terminated, truncated, info, label: str) -> bool:
    n = len(next_obs)
    what = f"replay_next_obs(next_obs, terminated, truncated, info) on {label}"
    out = check.call(fn, next_obs.copy(), terminated.copy(), truncated.copy(),
                     {k: v.copy() for k, v in info.items()}, what=what)
    if not isinstance(out, tuple) or len(out) != 2:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected a pair (real_next_obs, terminal).")
    real = check.array(_numpy(out[0]), what + " [0]", shape=next_obs.shape)
    terminal = check.array(_numpy(out[1]), what + " [1]", shape=(n,))
    ended = terminated | truncated
    reset_rows = [int(i) for i in np.flatnonzero(ended) if np.allclose(real[i], next_obs[i]) and not np.allclose(real[i], info["final_obs"][i])]
    if not check.expect(not reset_rows, f"{label}: next observation of finished episodes",
                        f"rows {reset_rows} (where an episode ended) store next_obs, which under SAME-STEP "
                        "autoreset is already the first observation of the NEXT episode; store "
                        "info['final_obs'] there, the observation the episode really ended in."):
        return False
    if not check.expect(np.allclose(real, info["final_obs"]), f"{label}: next observations",
                        "the stored next observation must be next_obs where the episode goes on and "
                        "info['final_obs'] where it ended."):
        return False
    want = terminated.astype(np.float64)
    cut = [int(i) for i in np.flatnonzero(truncated & ~terminated) if terminal[i] != 0]
    if not check.expect(not cut, f"{label}: truncated is not terminal",
                        f"rows {cut} were cut by the time limit (truncated, not terminated) but are stored as "
                        "terminal: the pole was still up, so the target must still bootstrap from Q(final_obs)."):
        return False
    return check.expect(np.array_equal(terminal.astype(np.float64), want), f"{label}: terminal flags",
                        f"terminated {terminated.astype(int).tolist()}, truncated {truncated.astype(int).tolist()}: "
                        f"expected terminal = terminated = {want.astype(int).tolist()}, got "
                        f"{terminal.astype(float).tolist()}.")


def replay_next_obs(fn) -> None:
    """Grade `replay_next_obs(next_obs, terminated, truncated, info)` on hand-built and real steps."""
    with Check("ch08.replay_next_obs", "the next observation and terminal flag a transition stores",
               hint=("Under SAME-STEP autoreset, next_obs[i] of a finished episode is already the next episode's "
                     "start: store info['final_obs'] instead. Only `terminated` stops the bootstrap; a truncated "
                     f"transition keeps its future ({LESSON}, section 4).")) as check:
        fn = check.signature(fn, "next_obs", "terminated", "truncated", "info")
        n = 4
        next_obs = np.arange(16, dtype=np.float32).reshape(n, 4)
        info = {"final_obs": next_obs.copy(), "episode_return": np.full(n, np.nan), "episode_length": np.zeros(n, int)}
        nothing = np.zeros(n, dtype=bool)
        if not _check_next_obs(check, fn, next_obs, nothing, nothing, info, "a step where no episode ended"):
            return
        for seed in range(3):
            if not _check_next_obs(check, fn, *_step_case(seed), f"hand-built step {seed + 1} (terminations and truncations)"):
                return
        from rlcore.envs import make_vector

        with make_vector("CartPole-v1", 16, backend="auto", seed=8) as envs:
            envs.reset(seed=8)
            rng = np.random.default_rng(8)
            ended_steps = 0
            for t in range(60):
                next_obs, _, terminated, truncated, info = envs.step(rng.integers(0, 2, size=16))
                if (terminated | truncated).any():
                    ended_steps += 1
                    if not _check_next_obs(check, fn, next_obs, terminated, truncated, info, f"CartPole step {t + 1}"):
                        return
        check.note(f"hand-built steps and {ended_steps} CartPole steps where episodes ended")


# =============================================================================================
# td_target
# =============================================================================================

TD_CASES = [
    (([[1.0, 3.0]], [1.0], [0.0], 0.9, None), "one row: 1 + 0.9 * max(1, 3) = 3.7"),
    (([[1.0, 3.0]], [1.0], [1.0], 0.9, None), "a terminal row is the reward alone: 1"),
    (([[1.0, 3.0], [2.0, -1.0], [0.5, 0.25]], [1.0, 0.0, -2.0], [0.0, 0.0, 1.0], 0.9, None),
     "three rows, the last terminal: [3.7, 1.8, -2]"),
    (([[4.0, 5.0], [-1.0, -2.0]], [0.0, 1.0], [0.0, 0.0], 0.0, None), "gamma = 0 keeps the rewards: [0, 1]"),
    (([[1.0, 3.0], [2.0, -1.0]], [1.0, 0.0], [0.0, 0.0], 0.5, [[5.0, 0.0], [0.0, 1.0]]),
     "double DQN: the online network picks actions [0, 1], the target network scores them: [1.5, -0.5]"),
    (([[1.0, 3.0], [2.0, -1.0]], [1.0, 0.0], [0.0, 1.0], 0.5, [[5.0, 0.0], [0.0, 1.0]]),
     "double DQN with a terminal row: [1.5, 0]"),
]


def _td_case(check: Check, fn, q_next, rewards, terminated, gamma, q_online, why: str) -> bool:
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    q_next, rewards, terminated = t(q_next), t(rewards), t(terminated)
    q_online = None if q_online is None else t(q_online)
    args = (q_next.clone(), rewards.clone(), terminated.clone(), gamma) + (() if q_online is None else (q_online.clone(),))
    B, A = q_next.shape
    what = f"td_target(q_target_next [{B}, {A}], rewards, terminated, gamma={gamma:g}" + (", q_online_next)" if q_online is not None else ")")
    got = check.array(_numpy(check.call(fn, *args, what=what)), what, shape=(B,))
    want = ref.td_target(q_next, rewards, terminated, gamma, q_online).numpy()
    detail = f"{why}: expected {np.round(want, 4).tolist()}, got {np.round(got, 4).tolist()}."
    if B <= 3:
        detail = f"q_target_next {q_next.tolist()}, rewards {rewards.tolist()}, terminated {terminated.tolist()}, " + detail
    return check.expect(_close(got, want), what, detail)


def td_target(fn) -> None:
    """Grade `td_target(q_target_next, rewards, terminated, gamma, q_online_next=None)` against rlcore."""
    with Check("ch08.td_target", "the TD target y = r + gamma (1 - terminated) max Q_target(s', .)",
               hint=("Take the max over the action axis (dim=1) of each row, zero it where terminated = 1, and for "
                     "double DQN gather the target network's value at the online network's argmax "
                     f"({LESSON}, sections 2 and 5).")) as check:
        fn = check.signature(fn, "q_target_next", "rewards", "terminated", "gamma")
        with deeprl.single_threaded():
            _td_cases(check, fn)


def _td_cases(check: Check, fn) -> None:
    if True:
        for (q_next, rewards, terminated, gamma, q_online), why in TD_CASES:
            if not _td_case(check, fn, q_next, rewards, terminated, gamma, q_online, why):
                return
        rng = np.random.default_rng(88)
        for k in range(12):
            B, A = int(rng.integers(5, 64)), int(rng.integers(2, 5))
            q_online = rng.normal(size=(B, A)).tolist() if k % 2 else None
            if not _td_case(check, fn, rng.normal(size=(B, A)).tolist(), rng.normal(size=B).tolist(),
                            (rng.random(B) < 0.3).astype(float).tolist(), float(rng.uniform(0.8, 1.0)), q_online,
                            "a random batch" + (" (double DQN)" if q_online is not None else "")):
                return
        check.note("hand cases and 12 random batches, DQN and double DQN")


# =============================================================================================
# dqn_loss
# =============================================================================================


def _loss_case(seed: int, B: int = 32, n_actions: int = 3, obs_dim: int = 4):
    """Two different random Q-networks and a replay batch whose errors exceed 1 (where Huber and MSE differ)."""
    import gymnasium as gym

    torch.manual_seed(seed)
    obs_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
    act_space = gym.spaces.Discrete(n_actions)
    online, target = QNetwork(obs_space, act_space, (16,)), QNetwork(obs_space, act_space, (16,))
    g = torch.Generator().manual_seed(seed)
    batch = {"obs": torch.randn(B, obs_dim, generator=g), "actions": torch.randint(0, n_actions, (B,), generator=g),
             "rewards": 3.0 * torch.randn(B, generator=g), "next_obs": torch.randn(B, obs_dim, generator=g),
             "terminated": (torch.rand(B, generator=g) < 0.25).float()}
    return online, target, batch


def _ref_loss(online, target, batch, gamma, double_dqn):
    with torch.no_grad():
        y = ref.td_target(target(batch["next_obs"]), batch["rewards"], batch["terminated"], gamma,
                          online(batch["next_obs"]) if double_dqn else None)
    q = online(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q, y), q


def dqn_loss(fn) -> None:
    """Grade `dqn_loss(q_network, target_network, batch, gamma, double_dqn=False)`: value, gradient, no target gradient."""
    with Check("ch08.dqn_loss", "the Huber loss on Q(s, a) against a target without gradient",
               hint=("q_taken = q_network(obs).gather(1, actions.unsqueeze(1)).squeeze(1); compute the target "
                     "under torch.no_grad() from target_network(next_obs) with your td_target; return "
                     f"(F.smooth_l1_loss(q_taken, y), q_taken) ({LESSON}, section 2).")) as check:
        fn = check.signature(fn, "q_network", "target_network", "batch", "gamma")
        with deeprl.single_threaded():  # tiny networks stall when torch's threads contend for 2 cores
            _loss_cases(check, fn)


def _loss_cases(check: Check, fn) -> None:
    if True:
        for seed, double in ((0, False), (1, False), (2, True), (3, True)):
            online, target, batch = _loss_case(seed)
            label = f"random networks and batch {seed + 1}" + (" (double DQN)" if double else "")
            what = f"dqn_loss(q_network, target_network, batch, gamma=0.9{', double_dqn=True' if double else ''})"
            kwargs = {"double_dqn": True} if double else {}
            out = check.call(fn, online, target, {k: v.clone() for k, v in batch.items()}, 0.9, what=what, **kwargs)
            if not isinstance(out, tuple) or len(out) != 2:
                raise LearnerCodeError(f"{what} returned {describe(out)}; expected a pair (loss, q_taken).")
            loss, q_taken = out
            check.require(torch.is_tensor(loss) and loss.numel() == 1, f"{label}: a scalar loss",
                          f"the loss must be a one-element tensor, got {describe(loss)}.")
            want_loss, want_q = _ref_loss(online, target, batch, 0.9, double)
            q_np = check.array(_numpy(q_taken), what + " q_taken", shape=(32,))
            if not check.expect(_close(q_np, want_q.detach().numpy()), f"{label}: Q(s, a) of the taken actions",
                                "q_taken must be q_network(obs) gathered at the batch's actions along the action "
                                f"axis (dim 1); first rows expected {np.round(want_q.detach().numpy()[:4], 4).tolist()}, "
                                f"got {np.round(q_np[:4], 4).tolist()}."):
                return
            mse = F.mse_loss(want_q.detach(), _target_of(online, target, batch, 0.9, double))
            if not check.expect(abs(float(loss.detach()) - float(want_loss)) <= 1e-4 * max(1.0, abs(float(want_loss))),
                                f"{label}: loss value",
                                f"expected the Huber loss {float(want_loss):.5f}, got {float(loss.detach()):.5f}"
                                + (" (that is the squared error: use F.smooth_l1_loss)"
                                   if abs(float(loss.detach()) - float(mse)) < 1e-4 * max(1.0, float(mse)) else "")
                                + ". The target is r + gamma (1 - terminated) max_a' target_network(next_obs)."):
                return
            check.require(loss.requires_grad, f"{label}: the loss has a gradient",
                          "the loss carries no gradient: compute q_taken outside torch.no_grad().")
            online.zero_grad(set_to_none=True)
            target.zero_grad(set_to_none=True)
            with torch.enable_grad():
                check.call(loss.backward, what="loss.backward()")
            leaked = [name for name, p in target.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
            if not check.expect(not leaked, f"{label}: no gradient into the target network",
                                f"after loss.backward() the target network's parameters {leaked} have gradients: "
                                "the target was computed with autograd on. Wrap it in torch.no_grad() (or .detach() it)."):
                return
            grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in online.parameters()]
            online.zero_grad(set_to_none=True)
            want_loss.backward()
            ok = all(torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6) for g, p in zip(grads, online.parameters()))
            if not check.expect(ok, f"{label}: gradient of the loss",
                                "the loss has the right value but its gradient differs from rlcore's: the target "
                                "must be a constant (computed under torch.no_grad()), so only Q(s, a) is differentiated."):
                return
        check.note("value, gradient and a gradient-free target on 4 random batches, DQN and double DQN")


def _target_of(online, target, batch, gamma, double):
    with torch.no_grad():
        return ref.td_target(target(batch["next_obs"]), batch["rewards"], batch["terminated"], gamma,
                             online(batch["next_obs"]) if double else None)


# =============================================================================================
# ReplayBuffer
# =============================================================================================


def _transitions(first_id: int, n: int):
    """n transitions whose every field encodes an id (ids start at 1, so an empty row, all zeros, shows)."""
    ids = np.arange(first_id, first_id + n)
    obs = np.repeat(ids[:, None], 4, axis=1).astype(np.float32)
    return ids, (obs, ids % 2, ids.astype(np.float32) * 10, obs + 0.5, (ids % 3 == 0))


def _sampled_ids(check: Check, buffer, batch_size: int, seed: int, label: str) -> np.ndarray:
    what = f"buffer.sample({batch_size}, rng)"
    out = check.call(buffer.sample, batch_size, np.random.default_rng(seed), what=what)
    if not isinstance(out, dict):
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected a dict of tensors.")
    missing = [k for k in ("obs", "actions", "rewards", "next_obs", "terminated") if k not in out]
    if missing:
        raise LearnerCodeError(f"{what} returned a dict without {missing}; keys: obs, actions, rewards, next_obs, terminated.")
    check.require(all(torch.is_tensor(out[k]) for k in out), f"{label}: tensors",
                  "sample must return torch tensors (torch.as_tensor) so they can go into the network.")
    check.require(out["actions"].dtype == torch.int64 and out["obs"].dtype == torch.float32,
                  f"{label}: dtypes", f"expected obs float32 and actions int64 (for gather); got {out['obs'].dtype} "
                  f"and {out['actions'].dtype}.")
    obs = check.array(_numpy(out["obs"]), what + '["obs"]', shape=(batch_size, 4))
    fields = {k: check.array(_numpy(out[k]).astype(np.float64), f'{what}["{k}"]', shape=(batch_size,))
              for k in ("actions", "rewards", "terminated")}
    next_obs = check.array(_numpy(out["next_obs"]), what + '["next_obs"]', shape=(batch_size, 4))
    ids = obs[:, 0].astype(np.int64)
    empty = np.flatnonzero(np.all(obs == 0, axis=1) & np.all(next_obs == 0, axis=1))
    check.require(empty.size == 0, f"{label}: only rows written so far are sampled",
                  f"{empty.size} of {batch_size} sampled rows are all zeros, rows of the buffer never written: draw "
                  "indices from 0 .. len(buffer) - 1, not from the whole capacity.")
    consistent = (np.all(obs == ids[:, None], axis=1) & np.all(next_obs == ids[:, None] + 0.5, axis=1)
                  & (fields["actions"] == ids % 2) & (fields["rewards"] == ids * 10.0)
                  & (fields["terminated"] == (ids % 3 == 0)))
    bad = np.flatnonzero(~consistent)
    check.require(bad.size == 0, f"{label}: each sampled row is one stored transition",
                  f"sampled row {bad[:1].tolist()} mixes fields of different transitions (obs id {ids[bad[:1]].tolist()}): "
                  "sample one index per row and take every field at that index.")
    return ids


def ReplayBuffer(cls) -> None:  # noqa: N802 - graded by the learner's class name
    """Grade the learner's `ReplayBuffer(capacity, obs_shape)` class: contents after the ring wraps, uniform sampling."""
    with Check("ch08.ReplayBuffer", "a ring replay buffer with uniform sampling",
               hint=("Keep a write position pos and a size: add writes rows (pos + arange(N)) % capacity, then "
                     "pos = (pos + N) % capacity and size = min(size + N, capacity); sample draws "
                     f"rng.integers(0, size, batch_size) ({LESSON}, section 2).")) as check:
        if not check.inspect(lambda c: isinstance(c, type), cls, what="isinstance(ReplayBuffer, type)"):
            raise LearnerCodeError(f"expected the ReplayBuffer class itself, got {describe(cls)}.")
        check.signature(cls, "capacity", "obs_shape")
        buffer = check.call(cls, 10, (4,), what="ReplayBuffer(10, (4,))")
        missing = check.inspect(lambda b: [n for n in ("add", "sample", "__len__") if not callable(getattr(b, n, None))],
                                buffer, what="the methods of ReplayBuffer(10, (4,))")
        if missing:
            raise LearnerCodeError(f"ReplayBuffer has no method {missing[0]}; write add, sample and __len__.")
        stored = []
        for step, n in enumerate((4, 4, 4, 3)):
            ids, fields = _transitions(1 + sum((4, 4, 4, 3)[:step]), n)
            check.call(buffer.add, *fields, what=f"buffer.add(...) of {n} transitions (ids {ids[0]}..{ids[-1]})")
            stored = (stored + ids.tolist())[-10:]
            size = check.call(len, buffer, what="len(buffer)")
            check.require(size == len(stored), f"after {sum((4, 4, 4, 3)[:step + 1])} transitions: len(buffer)",
                          f"a buffer of capacity 10 holding {sum((4, 4, 4, 3)[:step + 1])} added transitions has length "
                          f"{len(stored)}, got {size}.")
            sampled = _sampled_ids(check, buffer, 4000, step, f"after {sum((4, 4, 4, 3)[:step + 1])} transitions")
            outside = sorted(set(sampled.tolist()) - set(stored))
            check.require(not outside, f"after {sum((4, 4, 4, 3)[:step + 1])} transitions: contents",
                          f"the buffer should hold ids {sorted(stored)}, but sampling returned ids {outside}"
                          + (" (0 is an empty row: sample only from the rows filled so far)" if 0 in outside else
                             " (the ring must overwrite the oldest transitions)") + ".")
            never = sorted(set(stored) - set(sampled.tolist()))
            check.require(not never, f"after {sum((4, 4, 4, 3)[:step + 1])} transitions: every stored transition can be sampled",
                          f"ids {never} were stored but never sampled in 4000 draws.")
        counts = np.bincount(sampled - min(stored), minlength=10)[:10]
        p_value = float(stats._scipy_stats.chisquare(counts).pvalue)
        check.require(p_value > 1e-4, "uniform sampling",
                      f"over 4000 draws the 10 stored transitions were sampled {counts.tolist()} times (chi-square "
                      f"p = {p_value:.1e}); uniform sampling gives each about 400.")
        a = _sampled_ids(check, buffer, 500, 99, "same seed")
        b = _sampled_ids(check, buffer, 500, 99, "same seed")
        check.require(np.array_equal(a, b), "the same rng seed gives the same batch",
                      "two samples with np.random.default_rng(99) differ: draw the indices from rng.")
        check.note("exact contents after the ring wrapped twice; chi-square p = " f"{p_value:.2f} for uniform sampling")


# =============================================================================================
# The training loop: a learning curve on CartPole-v1
# =============================================================================================

PUBLISHED_MEAN, PUBLISHED_SD = 488.69, 16.11  # CleanRL dqn.py, 500k steps, 3 seeds, population SD
RANDOM_RETURN = 22.7  # a uniformly random policy on CartPole-v1 (published_results.md section 2)
# The margin of section 6.4 against CleanRL's score: pass line 488.69 - 39.46 = 449.2.
DELTA = stats.noninferiority_delta(PUBLISHED_MEAN, stats.population_to_sample_sd(PUBLISHED_SD, 3), RANDOM_RETURN)
# Section 6.4's smallest margin, 5% of CleanRL's improvement over a random policy (23.3): the floor of the pass line.
RANDOM_FLOOR = RANDOM_RETURN + 0.05 * (PUBLISHED_MEAN - RANDOM_RETURN)
VISIBLE_SEEDS = (1, 2, 3, 4, 5, 6, 7)
NUM_ENVS = ref.CARTPOLE_FAST["num_envs"]
TOTAL_TIMESTEPS = ref.CARTPOLE_FAST["total_timesteps"]
# The hyperparameters the exercise gives the learner's loop: rlcore's preset without the run's size
# (num_envs, total_timesteps come with the grader's envs) and the loss (the exercise's dqn_loss is Huber).
SETTINGS = {k: v for k, v in ref.CARTPOLE_FAST.items() if k not in ("num_envs", "total_timesteps", "huber")}


def pass_line(final: dict) -> float:
    """The graded pass line for our reference finals {mean, sd}: section 6.4 applied to our own rlcore runs
    (mean - max(2 SD, 5% of the improvement over random)), floored at RANDOM_FLOOR.

    Why not CleanRL's 449.2: no setting found within the 170 s budget for 7 seeds reaches CleanRL's 488.69
    reliably (our 200k-step runs end between 103 and 500, and about 2% of 7-seed draws of them would pass
    CleanRL's line; the reference file stores both calibrations). With our 32 runs (mean 381.6, SD 139.2) the
    line is 381.6 - 2 * 139.2 = 103.2; the floor only binds for a reference whose spread exceeds its mean."""
    own = final["mean"] - stats.noninferiority_delta(final["mean"], final["sd"], RANDOM_RETURN)
    return max(own, RANDOM_FLOOR)


def _task() -> deeprl.CurveTask:
    reference = load_reference()["cartpole"]
    final = reference["final"]
    line = pass_line(final)
    return deeprl.CurveTask(
        check_id="ch08.train_dqn", title=f"your DQN loop learns CartPole-v1 in {TOTAL_TIMESTEPS:,} steps",
        env_id="CartPole-v1", num_envs=NUM_ENVS, total_timesteps=TOTAL_TIMESTEPS, seeds=VISIBLE_SEEDS,
        published_mean=final["mean"], delta=final["mean"] - line,
        published_label=(f"rlcore DQN {final['mean']:.0f} at {TOTAL_TIMESTEPS // 1000}k steps; CleanRL's "
                         f"{PUBLISHED_MEAN:g} needs 500k, beyond the budget"),
        best_return=500.0, random_return=RANDOM_RETURN, reference=reference, lesson=LESSON, sections=SECTIONS,
        hint=(f"Each step: epsilon from linear_schedule at the global step, epsilon_greedy actions, envs.step, "
              "replay_next_obs, buffer.add; after learning_starts, every train_frequency steps do gradient_steps "
              "updates of dqn_loss on buffer.sample(batch_size, rng); copy the online network into the target "
              "network every target_network_frequency steps. Log losses/q_values, losses/td_loss and "
              f"charts/epsilon so a failure can be diagnosed ({LESSON}, section 6)."))


def train_dqn(fn) -> None:
    """Grade `train_dqn(envs, seed, total_timesteps, log)` on CartPole-v1 (7 seeds)."""
    deeprl.curve_check(_task(), fn, n_actions=2)
