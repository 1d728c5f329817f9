"""Checks for chapter 09, policy gradients (REINFORCE).

- `rollout_reward_to_go`: exact, against hand-computed rollouts and `rlcore.reinforce.rollout_reward_to_go`
  on random [T, N] rollouts with random episode ends; a wrong answer is matched against the common
  mistakes (sums run forwards, discounts reversed, episode ends ignored, the reset one step late).
- `action_log_probs`: exact, against hand cases and torch.distributions.Categorical on random logits,
  logits of 1000 (where log(softmax) underflows), and the gradient d log pi(a) / d logits = onehot(a) - pi.
- `policy_gradient_loss`: exact values and gradients: d loss / d log_probs = -(G - b) / B, no gradient
  into the baseline, a scalar that is the mean (not the sum) over steps.
- `normalize_advantages`: mean 0 and standard deviation 1 (either ddof), finite on a constant batch.
- `gradient_estimator`: statistical with an analytic answer. On a two-armed Gaussian bandit the
  learner's `action_log_probs` and `policy_gradient_loss` give one gradient estimate per sample
  (20,000 samples); their mean must match the policy gradient theorem's pi_k (mu_k - J) within 4.5
  standard errors, with and without a baseline, and their spread the closed-form variance (within
  4.5 of its standard errors), so a baseline that lowers the variance and leaves the mean alone passes.
- `train_reinforce`: the learner's training loop on CartPole-v1 over 7 seeds (autograder.deeprl.curve_check),
  one-sided non-inferiority against our own rlcore reference (no published REINFORCE number exists for
  CartPole-v1 in the course's sources; autograder/references/ch09_reinforce.json, made by gen_ch09.py).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from autograder import deeprl
from autograder.protocol import Check, LearnerCodeError, describe, gradients
from rlcore import reinforce as ref

LESSON = "lesson 09 (course/09_policy_gradients.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch09_reinforce.json"

# The graded CartPole setting: rlcore's preset, the one the exercise states.
GRADED = ref.CARTPOLE_GRADED
VISIBLE_SEEDS = (1, 2, 3, 4, 5, 6, 7)
RANDOM_RETURN = 22.7  # CartPole-v1 under a uniformly random policy (published_results.md section 2; ch00)
BEST_RETURN = 500.0  # CartPole-v1's episode cap
SECTIONS = {"flat": "7.1 Flat at the random baseline", "entropy": "7.2 Entropy collapse", "nan": "7.3 NaN",
            "speed": "7.4 Too slow"}

Z = 4.5  # statistical cases of gradient_estimator: a correct estimator fails one of its 8 with p < 1e-4


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our rlcore REINFORCE runs (autograder/references/ch09_reinforce.json)."""
    return json.loads(REFERENCE_FILE.read_text())


# =============================================================================================
# Helpers
# =============================================================================================


def _numpy(check: Check, value, what: str, shape: tuple) -> np.ndarray:
    """A learner's tensor or array as a float64 ndarray of the expected shape (clear messages otherwise)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return check.array(value, what, shape=shape).astype(np.float64)


def _fmt(values, digits: int = 4) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


def _close(got, want, tol: float = 1e-5) -> bool:
    return bool(np.allclose(got, want, rtol=tol, atol=tol))


def _matches(got, mistakes: dict, want) -> str:
    names = [name for name, value in mistakes.items()
             if np.shape(value) == np.shape(got) and _close(got, value) and not _close(value, want)]
    return f" Your answer equals {' or '.join(names)}." if names else ""


# =============================================================================================
# rollout_reward_to_go(rewards, dones, gamma) -> G [T, N]
# =============================================================================================


def _rtg_numpy(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    return ref.rollout_reward_to_go(rewards.astype(np.float64), dones, gamma)


def _rtg_mistakes(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> dict[str, np.ndarray]:
    """[T, N] answers of common mistakes."""
    T = rewards.shape[0]
    forward = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[1])
    for t in range(T):  # accumulated from the start of the rollout
        acc = rewards[t] + gamma * acc * (1.0 - (dones[t - 1] if t else 0.0))
        forward[t] = acc
    reversed_discounts = np.zeros_like(rewards)
    for i in range(rewards.shape[1]):  # within each episode, gamma^(end - k) instead of gamma^(k - t)
        ends = [-1] + list(np.flatnonzero(dones[:, i])) + ([T - 1] if not dones[T - 1, i] else [])
        for start, end in zip(np.array(ends[:-1]) + 1, ends[1:]):
            for t in range(start, end + 1):
                k = np.arange(t, end + 1)
                reversed_discounts[t, i] = np.sum(gamma ** (end - k) * rewards[k, i])
    late = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in range(T - 1, -1, -1):  # the episode end applied one step late (done_{t+1} for done_t)
        carry = 1.0 - dones[t + 1] if t + 1 < T else 1.0
        running = rewards[t] + gamma * carry * running
        late[t] = running
    return {
        "rewards summed forwards from the start of the rollout (G_t collects the rewards from t on: go backwards)":
            forward,
        "the discounts reversed (the reward at the episode's end undiscounted, gamma^(end - k) for gamma^(k - t))":
            reversed_discounts,
        "sums that run through episode ends (multiply the carried G_{t+1} by 1 - done_t)":
            _rtg_numpy(rewards, np.zeros_like(dones), gamma),
        "the episode end applied one step late (use done_t at step t, not done_(t+1))": late,
        "undiscounted sums (gamma unused)": _rtg_numpy(rewards, dones, 1.0),
    }


# (rewards [T][N], dones [T][N], gamma, what the case shows), smallest first.
RTG_CASES = [
    ([[1.0], [1.0], [1.0]], [[0], [0], [1]], 0.9, "one episode of three steps: [2.71, 1.9, 1]"),
    ([[1.0], [2.0], [4.0], [8.0]], [[0], [1], [0], [1]], 0.5,
     "two episodes in one column: the sum restarts after an episode end ([2, 2, 8, 8])"),
    ([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [[0, 1], [0, 0], [0, 1]], 0.5,
     "two environments, ends at different steps: columns are independent"),
    ([[1.0], [1.0], [1.0]], [[0], [0], [0]], 0.5,
     "no episode end inside the rollout: the sum stops at the last step (G_T = 0)"),
    ([[3.0], [5.0], [7.0]], [[0], [0], [1]], 0.0, "gamma = 0 keeps only r_t"),
    ([[3.0], [5.0], [7.0]], [[0], [1], [1]], 1.0, "gamma = 1 adds the episode's remaining rewards"),
]


def _random_rollouts(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        T, N = int(rng.integers(1, 60)), int(rng.integers(1, 9))
        rewards = rng.normal(size=(T, N)) * float(rng.choice([1.0, 10.0]))
        dones = rng.random((T, N)) < float(rng.uniform(0.02, 0.4))
        cases.append((rewards, dones, float(rng.uniform(0.5, 1.0))))
    return sorted(cases, key=lambda c: c[0].size)


def rollout_reward_to_go(fn, *, budget_s: float = 5.0) -> None:
    """Check `rollout_reward_to_go(rewards, dones, gamma) -> G [T, N]`."""
    with Check("ch09.rollout_reward_to_go", "reward-to-go over a [T, N] rollout with episode ends",
               hint=f"Go backwards over t with one running sum per environment: G_t = r_t + gamma * (1 - done_t) * G_(t+1), "
                    f"starting from G_T = 0; a done at step t means step t was its episode's last ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "rewards", "dones", "gamma")

        def run(rewards: np.ndarray, dones: np.ndarray, gamma: float, what: str, dtype=torch.float32) -> np.ndarray:
            r, d = torch.as_tensor(rewards, dtype=dtype), torch.as_tensor(dones, dtype=torch.bool)
            out = check.call(fn, r, d, gamma, budget_s=budget_s, what=what)
            check.require(torch.equal(r, torch.as_tensor(rewards, dtype=dtype)) and torch.equal(d, torch.as_tensor(dones)),
                          "the inputs are not modified", f"{what} changed rewards or dones; write G into a new tensor "
                          "(torch.zeros_like(rewards)).")
            return _numpy(check, out, what, rewards.shape)

        # 1. Hand-computed rollouts.
        for r_values, d_values, gamma, why in RTG_CASES:
            rewards, dones = np.array(r_values), np.array(d_values, dtype=bool)
            what = (f"rollout_reward_to_go(rewards={_fmt(rewards[:, 0]) if rewards.shape[1] == 1 else rewards.tolist()}"
                    f"{'[:, None]' if rewards.shape[1] == 1 else ''}, dones={dones.astype(int).tolist()}, gamma={gamma:g})")
            got, want = run(rewards, dones, gamma, what), _rtg_numpy(rewards, dones, gamma)
            check.require(_close(got, want), why, f"{what} returned {np.round(got, 4).tolist()}; expected "
                          f"{np.round(want, 4).tolist()}."
                          + _matches(got, _rtg_mistakes(rewards, dones, gamma), want))
        # 2. Random rollouts against rlcore, in float32 and float64.
        for k, (rewards, dones, gamma) in enumerate(_random_rollouts(seed=9, count=16)):
            T, N = rewards.shape
            what = f"rollout_reward_to_go(rewards [T={T}, N={N}], dones with {int(dones.sum())} episode ends, gamma={gamma:.3f})"
            dtype = torch.float64 if k % 2 else torch.float32
            got, want = run(rewards, dones, gamma, what, dtype), _rtg_numpy(rewards, dones, gamma)
            tol = 1e-4  # a float32 gamma (python float times a bool tensor) is enough for 1e-6 errors
            if not _close(got, want, tol):
                bad = np.argwhere(~np.isclose(got, want, rtol=tol, atol=tol))
                t, i = bad[0] if bad.size else (0, 0)
                check.require(False, f"random rollout [T={T}, N={N}]",
                              f"{what}: G[{t}, {i}] is {got[t, i]:.6g}, expected {want[t, i]:.6g}."
                              + _matches(got, _rtg_mistakes(rewards, dones, gamma), want))
            check.expect(True, f"random rollout [T={T}, N={N}]")
        check.note("matches rlcore.reinforce.rollout_reward_to_go on 6 hand-computed and 16 random rollouts")


# =============================================================================================
# action_log_probs(logits, actions) -> [B]
# =============================================================================================


def _logp_mistakes(logits: torch.Tensor, actions: torch.Tensor) -> dict[str, np.ndarray]:
    idx = actions.long().unsqueeze(-1)
    out = {
        "the probability softmax(logits)[a], not its log": logits.softmax(-1).gather(-1, idx).squeeze(-1),
        "the raw logit of the action (no log_softmax)": logits.gather(-1, idx).squeeze(-1),
    }
    out["log_softmax over the batch axis (dim=0) instead of the action axis (dim=-1)"] = \
        logits.log_softmax(0).gather(-1, idx).squeeze(-1)
    if logits.shape[1] == 2:
        out["the log-probability of the other action"] = logits.log_softmax(-1).gather(-1, 1 - idx).squeeze(-1)
    out["the log-probability of the most likely action, not the one taken"] = logits.log_softmax(-1).max(-1).values
    return {k: v.detach().double().numpy() for k, v in out.items()}


LOGP_CASES = [
    ([[0.0, 0.0]], [0], "two equal logits: log(1/2) = -0.6931"),
    ([[1.0, 2.0, 3.0]], [2], "log pi(2) = 3 - log(e + e^2 + e^3) = -0.4076"),
    ([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [0, 1], "each row uses its own action: [-2.408, -1.408]"),
    ([[5.0, -1.0], [0.5, 0.5], [-3.0, 2.0]], [1, 0, 0], "a batch of three rows"),
]


def action_log_probs(fn, *, budget_s: float = 5.0) -> None:
    """Check `action_log_probs(logits, actions) -> log pi(a | s) [B]`."""
    with Check("ch09.action_log_probs", "log-probability of the actions taken, from logits",
               hint=f"logits.log_softmax(dim=-1) over the action axis, then pick each row's action with "
                    f".gather(-1, actions.unsqueeze(-1)).squeeze(-1); never log(softmax(...)) ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "logits", "actions")

        def run(logits: torch.Tensor, actions: torch.Tensor, what: str) -> tuple[np.ndarray, object]:
            out = check.call(fn, logits, actions, budget_s=budget_s, what=what)
            return _numpy(check, out, what, (logits.shape[0],)), out

        # 1. Hand cases.
        for values, acts, why in LOGP_CASES:
            logits, actions = torch.tensor(values), torch.tensor(acts)
            what = f"action_log_probs(torch.tensor({values}), torch.tensor({acts}))"
            got, _ = run(logits, actions, what)
            want = ref.action_log_probs(logits.double(), actions).numpy()
            check.require(_close(got, want), why, f"{what} returned {_fmt(got)}; expected {_fmt(want)}."
                          + _matches(got, _logp_mistakes(logits.double(), actions), want))
        # 2. Random batches against torch.distributions.Categorical.
        rng = np.random.default_rng(3)
        for B, n in [(5, 2), (64, 3), (256, 6)]:
            logits = torch.as_tensor(rng.normal(size=(B, n)) * 3, dtype=torch.float32)
            actions = torch.as_tensor(rng.integers(0, n, size=B))
            what = f"action_log_probs(logits [{B}, {n}], actions [{B}])"
            got, _ = run(logits, actions, what)
            want = torch.distributions.Categorical(logits=logits.double()).log_prob(actions).numpy()
            b = int(np.argmax(np.abs(got - want)))
            check.require(_close(got, want, 1e-4), f"random logits [{B}, {n}] against Categorical(logits).log_prob",
                          f"{what}: row {b} gives {got[b]:.6g}, Categorical gives {want[b]:.6g}."
                          + _matches(got, _logp_mistakes(logits.double(), actions), want))
        # 3. Large logits: log_softmax stays finite where log(softmax) underflows to log(0) = -inf.
        logits, actions = torch.tensor([[1000.0, 0.0], [0.0, 1000.0]]), torch.tensor([1, 1])
        what = "action_log_probs(torch.tensor([[1000., 0.], [0., 1000.]]), torch.tensor([1, 1]))"
        out = check.call(fn, logits, actions, budget_s=budget_s, what=what)
        raw = out.detach().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=float)
        check.require(np.all(np.isfinite(raw)) and _close(raw, [-1000.0, 0.0]), "large logits stay finite",
                      f"{what} returned {_fmt(raw)}; expected [-1000, 0]. softmax(...) rounds e^-1000 to 0 and its "
                      "log is -inf: use log_softmax, which computes logit - logsumexp(logits) stably.")
        # 4. The gradient reaches the logits: d log pi(a) / d logits = onehot(a) - pi.
        logits = torch.tensor([[0.3, -1.2, 0.8], [2.0, 0.1, -0.4]], requires_grad=True)
        actions = torch.tensor([2, 0])
        what = "action_log_probs(logits with requires_grad=True, actions)"
        out = check.call(fn, logits, actions, budget_s=budget_s, what=what)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            check.require(False, "the result carries the gradient to the logits",
                          f"{what} returned {describe(out)} without a gradient: compute it with torch operations on "
                          "the logits (no .detach(), .numpy() or torch.no_grad()); the policy gradient flows through it.")
        (grad,) = check.grad(out, [logits], what="backward() through your log-probabilities")
        want_grad = np.eye(3)[[2, 0]] - logits.detach().softmax(-1).numpy()
        check.require(_close(grad, want_grad), "d log pi(a) / d logits = onehot(a) - softmax(logits)",
                      f"the gradient of the sum of your log-probabilities is {grad.round(4).tolist()}; expected "
                      f"{want_grad.round(4).tolist()}.")
        check.note("matches torch.distributions.Categorical(logits).log_prob on random batches; stable at logits of 1000")


# =============================================================================================
# policy_gradient_loss(log_probs, returns, baseline) -> scalar
# =============================================================================================


def policy_gradient_loss(fn, *, budget_s: float = 5.0) -> None:
    """Check `policy_gradient_loss(log_probs, returns, baseline=None) -> scalar loss`."""
    with Check("ch09.policy_gradient_loss", "policy-gradient loss with an optional baseline",
               hint=f"loss = -(log_probs * (returns - baseline.detach())).mean(): minus (gradient ascent by a "
                    f"minimiser), the mean over steps, and a baseline that is a constant of this loss ({LESSON}, "
                    f"sections 4 and 5).") as check:
        fn = check.signature(fn, "log_probs", "returns", "baseline")

        def run(log_probs, returns, baseline, what: str) -> torch.Tensor:
            out = check.call(fn, log_probs, returns, baseline, budget_s=budget_s, what=what)
            if not isinstance(out, torch.Tensor):
                raise LearnerCodeError(f"{what} returned {describe(out)}; return the loss as a torch tensor "
                                       "(so .backward() can run).")
            if out.numel() != 1:
                raise LearnerCodeError(f"{what} returned a tensor of shape {tuple(out.shape)}; the loss is one "
                                       "number (take the mean over the steps).")
            if not torch.isfinite(out).all():
                raise LearnerCodeError(f"{what} returned {out.item()}; expected a finite number.")
            return out

        # 1. Hand cases: value.
        lp, G = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0])
        cases = [
            (None, 3.5, "without a baseline: -((-1)(1) + (-2)(3)) / 2 = 3.5"),
            (torch.tensor([1.0, 1.0]), 2.0, "with a baseline of 1: -((-1)(0) + (-2)(2)) / 2 = 2"),
            (torch.tensor([1.0, 3.0]), 0.0, "a baseline equal to the returns: 0"),
        ]
        for b, want, why in cases:
            what = f"policy_gradient_loss(log_probs=[-1, -2], returns=[1, 3], baseline={'None' if b is None else _fmt(b)})"
            got = float(run(lp.clone(), G.clone(), None if b is None else b.clone(), what).item())
            detail = f"{what} returned {got:.6g}; expected {want:g}."
            if math.isclose(got, -want, abs_tol=1e-6) and want != 0:
                detail += " The sign is flipped: minimising the loss must raise log pi of actions with large returns."
            elif math.isclose(got, 2 * want, abs_tol=1e-6) and want != 0:
                detail += " That is the sum over the steps; take the mean, so the step size does not grow with the batch."
            elif b is not None and math.isclose(got, float(-(lp * (G + b)).mean()), abs_tol=1e-6):
                detail += " The baseline is added; the weight is returns - baseline."
            check.require(math.isclose(got, want, abs_tol=1e-5), why, detail)
        # 2. Random batches: value and gradient against rlcore.
        rng = np.random.default_rng(4)
        for B in (7, 300):
            lp = torch.as_tensor(-rng.random(B) * 3, dtype=torch.float32).requires_grad_()
            G = torch.as_tensor(rng.normal(size=B) * 20 + 5, dtype=torch.float32)
            for with_baseline in (False, True):
                b = torch.as_tensor(rng.normal(size=B) * 10, dtype=torch.float32) if with_baseline else None
                what = f"policy_gradient_loss(log_probs [{B}], returns [{B}], baseline={'[%d]' % B if with_baseline else 'None'})"
                out = run(lp, G.clone(), None if b is None else b.clone(), what)
                want = ref.policy_gradient_loss(lp.detach().double(), G.double(), None if b is None else b.double())
                check.require(math.isclose(float(out), float(want), rel_tol=1e-4, abs_tol=1e-4),
                              f"value on a random batch of {B}{' with a baseline' if with_baseline else ''}",
                              f"{what} returned {float(out):.6g}; expected {float(want):.6g}"
                              + (f" (that is {float(out) / float(want):.3g} times it)" if float(want) else "") + ".")
                if not out.requires_grad:
                    check.require(False, "the loss carries a gradient to log_probs",
                                  f"{what} has no gradient: keep log_probs in the computation (no .detach() or .item()).")
                (got_grad,) = check.grad(out, [lp], what="loss.backward()")
                weights = G - (b if b is not None else 0.0)
                want_grad = (-weights / B).numpy()
                check.require(_close(got_grad, want_grad, 1e-4), f"d loss / d log_probs = -(G - b) / B, batch of {B}",
                              f"the gradient of your loss with respect to log_probs[0] is {got_grad[0]:.6g}; expected "
                              f"-(G_0 - b_0) / B = {want_grad[0]:.6g}.")
        # 3. The baseline gets no gradient from the policy loss.
        lp = torch.tensor([-0.5, -1.5, -0.1], requires_grad=True)
        b = torch.tensor([2.0, 0.5, 1.0], requires_grad=True)
        what = "policy_gradient_loss(log_probs, returns, baseline with requires_grad=True)"
        out = run(lp, torch.tensor([3.0, 1.0, 2.0]), b, what)
        (baseline_grad,) = check.grad(out, [b], what="loss.backward()")
        check.require(not np.any(baseline_grad != 0), "no gradient flows into the baseline",
                      f"after backward() the baseline has gradient {_fmt(baseline_grad)}: "
                      "the policy loss is training the value network, pushing it away from the returns. "
                      "Use (returns - baseline.detach()).")
        check.note("value and gradient match rlcore.reinforce.policy_gradient_loss; the baseline is detached")


# =============================================================================================
# normalize_advantages(advantages) -> [B]
# =============================================================================================


def normalize_advantages(fn, *, budget_s: float = 5.0) -> None:
    """Check `normalize_advantages(advantages) -> [B]`: mean 0, standard deviation 1, finite when constant."""
    with Check("ch09.normalize_advantages", "advantage normalization",
               hint=f"(a - a.mean()) / (a.std() + 1e-8): subtract the mean, divide by the standard deviation, and add a "
                    f"small epsilon so a batch of equal values gives zeros, not NaN ({LESSON}, section 5).") as check:
        fn = check.signature(fn, "advantages")

        def run(values, what: str) -> np.ndarray:
            a = torch.as_tensor(values, dtype=torch.float32)
            out = check.call(fn, a.clone(), budget_s=budget_s, what=what)
            return _numpy(check, out, what, tuple(a.shape))

        # 1. Hand case: [1, 2, 3] -> [-1, 0, 1] (ddof = 1) or [-1.2247, 0, 1.2247] (ddof = 0).
        what = "normalize_advantages(torch.tensor([1., 2., 3.]))"
        got = run([1.0, 2.0, 3.0], what)
        ok = _close(got, [-1.0, 0.0, 1.0]) or _close(got, [-1.2247449, 0.0, 1.2247449])
        detail = f"{what} returned {_fmt(got)}; expected [-1, 0, 1] (or [-1.225, 0, 1.225] with the population SD)."
        if _close(got, [0.5, 1.0, 1.5]) or _close(got, [1.2247449, 2.4494897, 3.6742346]):
            detail += " The mean is not subtracted."
        elif _close(got, [-1.5, 0.0, 1.5]):
            detail += " That divides by the variance, not the standard deviation."
        check.require(ok, "[1, 2, 3] becomes [-1, 0, 1]", detail)
        # 2. Random batches: mean 0 and SD 1, signs and order kept.
        rng = np.random.default_rng(5)
        for B, scale in [(10, 50.0), (500, 0.01), (2000, 300.0)]:
            values = rng.normal(size=B) * scale + scale
            what = f"normalize_advantages(advantages [{B}] with SD about {scale:g})"
            got = run(values, what)
            sd0, sd1 = got.std(ddof=0), got.std(ddof=1)
            check.require(abs(got.mean()) < 1e-4 and (abs(sd0 - 1) < 1e-3 or abs(sd1 - 1) < 1e-3),
                          f"a batch of {B}: mean 0, standard deviation 1",
                          f"{what} has mean {got.mean():.4g} and standard deviation {sd1:.4g}; expected 0 and 1.")
            want = (values - values.mean()) / values.std(ddof=1)
            check.require(np.allclose(got, want, rtol=2e-3, atol=2e-3), f"a batch of {B}: each value moved and scaled alike",
                          f"{what}: entry 0 is {got[0]:.4g}, expected {want[0]:.4g}.")
        # 3. A constant batch: every weight is 0, not NaN.
        what = "normalize_advantages(torch.full((8,), 3.0))"
        a = torch.full((8,), 3.0)
        out = check.call(fn, a, budget_s=budget_s, what=what)
        raw = out.detach().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=float)
        check.require(raw.shape == (8,) and np.all(np.isfinite(raw)) and np.allclose(raw, 0.0, atol=1e-4),
                      "a constant batch gives zeros, not NaN",
                      f"{what} returned {_fmt(raw)}; the standard deviation is 0 there, so add a small epsilon "
                      "(1e-8) to it before dividing.")


# =============================================================================================
# gradient_estimator: the policy gradient theorem on a two-armed bandit
# =============================================================================================

BANDIT_THETA = np.array([0.4, -0.3])  # logits of the softmax policy
BANDIT_MEANS = np.array([1.0, 2.0])  # mean reward of each arm
BANDIT_SD = 1.0  # rewards are Gaussian around the arm's mean
BANDIT_SAMPLES = 20_000
BANDIT_SEED = 909


def bandit_truth(baseline: float) -> dict:
    """Closed forms for one-sample estimates g = grad_theta log pi(a) * (r - b) on the bandit:
    the mean pi_k (mu_k - J) (the policy gradient theorem) and the expected squared norm of g - mean."""
    pi = np.exp(BANDIT_THETA - BANDIT_THETA.max())
    pi /= pi.sum()
    J = float(pi @ BANDIT_MEANS)
    mean = pi * (BANDIT_MEANS - J)  # [2]
    score = np.eye(2) - pi  # row a: grad log pi(a) = onehot(a) - pi
    second = sum(pi[a] * (score[a] @ score[a]) * ((BANDIT_MEANS[a] - baseline) ** 2 + BANDIT_SD**2) for a in range(2))
    return {"pi": pi, "J": J, "mean": mean, "variance": float(second - mean @ mean)}


def bandit_samples(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n independent (action, reward) pairs of the bandit's policy."""
    rng = np.random.default_rng(seed)
    truth = bandit_truth(0.0)
    actions = (rng.random(n) < truth["pi"][1]).astype(np.int64)
    rewards = BANDIT_MEANS[actions] + BANDIT_SD * rng.normal(size=n)
    return torch.as_tensor(actions), torch.as_tensor(rewards)


def per_sample_gradients(log_prob_fn, loss_fn, actions: torch.Tensor, rewards: torch.Tensor,
                         baseline: float | None, call=None, grad=None) -> np.ndarray:
    """One estimate of grad J per sample [n, 2], from the learner's two functions.

    Every sample gets its own copy of the logits, so d loss / d theta_i is sample i's term alone; the
    loss is a mean over the n samples, hence the factor -n (minus: the loss is minus the objective).
    call(f, *args, what=...) and grad(out, wrt, what=...) run the learner's functions and differentiate their
    result (a check passes its Check.call and Check.grad).
    """
    call = call or (lambda f, *args, what=None: f(*args))
    grad = grad or (lambda out, wrt, what=None: list(gradients(out, None, *wrt)))
    n = actions.shape[0]
    theta = torch.tensor(np.tile(BANDIT_THETA, (n, 1)), dtype=torch.float64, requires_grad=True)  # [n, 2]
    log_probs = call(log_prob_fn, theta, actions, what=f"action_log_probs(logits [{n}, 2], actions [{n}])")
    b = None if baseline is None else torch.full((n,), float(baseline), dtype=torch.float64)
    loss = call(loss_fn, log_probs, rewards, b,
                what=f"policy_gradient_loss(log_probs [{n}], returns [{n}], baseline={'None' if b is None else f'[{n}]'})")
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise LearnerCodeError(f"the loss is {describe(loss)} without a gradient to the logits: build it from "
                               "action_log_probs's output with torch operations.")
    (theta_grad,) = grad(loss, [theta], what="loss.backward()")
    return -n * theta_grad


def gradient_estimator(log_prob_fn, loss_fn, *, budget_s: float = 20.0) -> None:
    """Check the estimator built from `action_log_probs` and `policy_gradient_loss` against the policy
    gradient theorem on a two-armed bandit: mean and variance, without and with a baseline."""
    with Check("ch09.gradient_estimator", "the policy-gradient estimator on a two-armed bandit",
               hint=f"With J = sum_a pi(a) mu_a, the gradient is dJ/dtheta_k = pi_k (mu_k - J). Your estimate per "
                    f"sample is grad log pi(a) (r - b): its mean must not depend on b, its spread must ({LESSON}, "
                    f"sections 2 and 5).") as check:
        check.signature(log_prob_fn, "logits", "actions")
        check.signature(loss_fn, "log_probs", "returns", "baseline")

        def call(f, *args, what=None):
            return check.call(f, *args, budget_s=budget_s, what=what)

        actions, rewards = bandit_samples(BANDIT_SEED, BANDIT_SAMPLES)
        n = BANDIT_SAMPLES
        J = bandit_truth(0.0)["J"]
        results = {}
        for label, b in (("without a baseline", None), (f"with the baseline b = J = {J:.3f}", J)):
            truth = bandit_truth(0.0 if b is None else b)
            g = per_sample_gradients(log_prob_fn, loss_fn, actions, rewards, b, call, check.grad)  # [n, 2]
            g = check.array(g, "the per-sample gradient estimates", shape=(n, 2))
            mean, se = g.mean(0), g.std(0, ddof=1) / math.sqrt(n)  # [2]
            z = np.abs(mean - truth["mean"]) / np.maximum(se, 1e-12)
            detail = (f"the mean of {n:,} one-sample estimates is {_fmt(mean)} (SE {_fmt(se, 2)}); the policy "
                      f"gradient theorem gives pi_k (mu_k - J) = {_fmt(truth['mean'])}.")
            if np.allclose(mean, -truth["mean"], atol=Z * se.max()):
                detail += " Yours points the other way: the loss must be minus log pi times the weight."
            elif np.allclose(mean, n * truth["mean"], rtol=0.2):
                detail += f" Yours is {n:,} times too large: a sum over the steps instead of the mean."
            check.require(bool(np.all(z <= Z)), f"mean of the estimates {label}", detail)
            # The spread: E||g - grad J||^2 against its closed form, with the sampling error of that mean.
            sq = ((g - truth["mean"]) ** 2).sum(1)  # [n]
            var, var_se = float(sq.mean()), float(sq.std(ddof=1) / math.sqrt(n))
            check.require(abs(var - truth["variance"]) <= Z * var_se + 1e-9, f"variance of the estimates {label}",
                          f"the estimates' mean squared distance from the true gradient is {var:.4g} "
                          f"(SE {var_se:.2g}); the closed form gives {truth['variance']:.4g}."
                          + (" Is the baseline added instead of subtracted?" if b is not None and var > truth["variance"] else ""))
            results[b is not None] = (mean, var)
        check.note(f"mean gradient {_fmt(results[False][0])} without and {_fmt(results[True][0])} with the baseline "
                   f"(theory {_fmt(bandit_truth(0.0)['mean'])}); variance {results[False][1]:.3f} -> {results[True][1]:.3f}")


# =============================================================================================
# train_reinforce(envs, seed, total_timesteps, log): the learning curve
# =============================================================================================


def curve_task() -> deeprl.CurveTask:
    """The graded CartPole-v1 curve, against our own rlcore reference."""
    data = load_reference()
    entry = data["runs"]
    final = entry["final"]
    return deeprl.CurveTask(
        check_id="ch09.train_reinforce", title="REINFORCE on CartPole-v1", env_id=GRADED["env_id"],
        num_envs=GRADED["num_envs"], total_timesteps=GRADED["total_timesteps"], seeds=VISIBLE_SEEDS,
        published_mean=final["mean"], delta=data["rule"]["delta"],
        published_label=f"our rlcore REINFORCE reference, {final['n']} seeds (gen_ch09.py); no published number",
        best_return=BEST_RETURN, random_return=RANDOM_RETURN, reference=entry, lesson=LESSON, sections=SECTIONS,
        hint=(f"Collect until {GRADED['episodes_per_update']} episodes have ended, compute the reward-to-go, keep the "
              f"steps whose episode ended (finished_steps), then one Adam step on the policy loss plus the baseline's "
              f"value loss; log losses/entropy each update ({LESSON}, sections 6 and 7)."))


def train_reinforce(fn) -> None:
    """Check the learner's `train_reinforce(envs, seed, total_timesteps, log)` on CartPole-v1."""
    deeprl.curve_check(curve_task(), fn, n_actions=2)
