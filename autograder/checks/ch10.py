"""Checks for chapter 10, actor-critic (A2C).

Exact pieces, each on hand-computed cases first (when one fails, the message names the common mistake
whose value the answer matches), then on random cases against rlcore:
- `categorical_entropy(logits)`: the entropy of a categorical policy from its logits, values and
  gradients against the log-softmax formula (rlcore.nets), stable for logits in the thousands.
- `nstep_returns(rewards, next_values, terminated, truncated, gamma)`: n-step bootstrapped returns over
  a [T, N] rollout on rlcore's SAME-STEP autoreset protocol, against `rlcore.returns.lambda_returns`
  with lambda = 1. Random rollouts are built as a real one would be: next_values[t] is V of
  info["final_obs"], which equals values[t + 1] wherever no episode ended.
- `compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)`: against
  `rlcore.returns.gae`, including lambda = 0 (one-step TD errors) and lambda = 1 (n-step returns - V).
- `a2c_loss(logprobs, entropy, values, returns, vf_coef, ent_coef)`: the loss value AND its gradients
  with respect to every input, against rlcore.a2c's loss (an advantage that is not detached gives the
  same number but a different gradient).

The training loop `train_a2c(envs, seed, total_timesteps, log)` is graded with
`autograder.deeprl.curve_check` on CartPole-v1: 7 seeds of 80k steps, the last-100 training-episode mean,
one-sided non-inferiority. The budget sits mid-curve on purpose: A2C's late scores have a heavy left tail
(about one seed in ten collapses late), so near the end, where the other seeds sit at 500 with a tiny SD,
a correct loop would fail 7-seed grading about one time in five; at 80k steps 99.7% of 7-seed resamples of
the reference pass (the reference file's `by_budget` table). Section 2 of published_results.md has no multi-seed A2C number (the SB3 zoo's A2C
reaches 500.0 at 500k steps with one seed, an anchor only), so the reference is our own rlcore run of
the same configuration over 30 seeds (autograder/references/ch10_actor_critic.json, made by
autograder/references/gen_ch10.py), and the margin is section 6.4's formula with our SD.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from autograder import deeprl, stats
from autograder.protocol import Check, LearnerCodeError, describe
from rlcore import returns as ref_returns
from rlcore.a2c import CARTPOLE_GRADED

LESSON = "lesson 10 (course/10_actor_critic.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch10_actor_critic.json"

# The graded learning curve: CartPole-v1 with rlcore.a2c.CARTPOLE_GRADED's settings (the exercise writes
# the same hyperparameters as constants), 7 visible seeds. The reference runs use seeds 1000 + i.
CURVE_ENV = "CartPole-v1"
NUM_ENVS = CARTPOLE_GRADED["num_envs"]
TOTAL_TIMESTEPS = CARTPOLE_GRADED["total_timesteps"]
VISIBLE_SEEDS = (1, 2, 3, 4, 5, 6, 7)
RANDOM_RETURN = 22.7  # published_results.md section 2, random policy on CartPole-v1
SB3_ANCHOR = "SB3 zoo A2C: 500.0 at 500k steps (one seed, deterministic evaluation; an anchor only)"
SECTIONS = {
    "flat": "8. When the curve is wrong: flat returns",
    "entropy": "9. When the curve is wrong: entropy",
    "value": "10. When the curve is wrong: the critic",
    "nan": "11. When the curve is wrong: NaN",
    "speed": "12. When the curve is wrong: speed",
}


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our rlcore reference runs (autograder/references/ch10_actor_critic.json)."""
    return json.loads(REFERENCE_FILE.read_text())


# =============================================================================================
# Helpers
# =============================================================================================


def _fmt(values, digits: int = 4) -> str:
    """A short list literal of numbers for messages."""
    flat = np.asarray(values, dtype=float).reshape(-1)
    shown = ", ".join(f"{v:.{digits}g}" for v in flat[:8])
    return "[" + shown + (", ..." if flat.size > 8 else "") + "]"


def _close(got, want, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    return bool(np.shape(got) == np.shape(want) and np.allclose(got, want, rtol=rtol, atol=atol))


# Returns and advantages: `gamma * ~terminated` makes a float32 tensor in torch (a Python float times a bool
# tensor), so a correct answer can carry gamma rounded to float32 (a relative error of about 1e-8 per
# step, up to about 3e-5 on a 128-step sum of rewards of size 5). Every planted mistake is off by O(1).
RTOL, ATOL = 1e-5, 2e-4


def _close_rollout(got, want) -> bool:
    return _close(got, want, rtol=RTOL, atol=ATOL)


def _numpy(check: Check, value, what: str, shape: tuple) -> np.ndarray:
    """A learner's tensor (or array) as a float64 ndarray of the given shape, with clear messages."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return check.array(value, what, shape=shape).astype(np.float64)


def _which_mistake(got, mistakes: dict, want) -> str:
    """' Your answer equals <mistake>.' for every known mistake the answer matches (else '')."""
    names = [name for name, value in mistakes.items()
             if _close(got, value, RTOL, ATOL) and not _close(value, want, RTOL, ATOL)]
    return f" Your answer equals {' or '.join(names)}." if names else ""


def _t(a, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def _flags(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=bool))


def random_rollout(rng: np.random.Generator, T: int, N: int, *, p_end: float = 0.15) -> dict:
    """A [T, N] rollout as the SAME-STEP autoreset protocol makes it, as float64 / bool torch tensors.

    values[t] = V(s_t); next_values[t] = V(info["final_obs"][t]): values[t + 1] where no episode ended at
    t < T - 1, V(the observation after the rollout) at t = T - 1, V(the final observation) where an
    episode ended (terminal or cut by the time limit; about 1 in 20 ends is both at once).
    """
    rewards = rng.normal(size=(T, N)) * rng.choice([1.0, 5.0])
    values = rng.normal(size=(T, N)) * 3.0
    ended = rng.random((T, N)) < p_end
    kind = rng.random((T, N))
    terminated = ended & (kind < 0.55)
    truncated = ended & (kind >= 0.5)  # 0.5..0.55: both flags at once
    next_values = np.empty((T, N))
    next_values[:-1] = values[1:]
    next_values[-1] = rng.normal(size=N) * 3.0
    next_values[ended] = rng.normal(size=int(ended.sum())) * 3.0
    return {"rewards": _t(rewards), "values": _t(values), "next_values": _t(next_values),
            "terminated": _flags(terminated), "truncated": _flags(truncated)}


def _shape_text(case: dict) -> str:
    T, N = case["rewards"].shape
    return f"a random rollout T = {T}, N = {N}"


def _snapshot(case: dict) -> dict:
    return {k: v.clone() for k, v in case.items()}


def _unchanged(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


# =============================================================================================
# categorical_entropy(logits) -> [B]
# =============================================================================================


def _ref_entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def _entropy_mistakes(logits: torch.Tensor) -> dict:
    with torch.no_grad():
        log_p = torch.log_softmax(logits, dim=-1)
        p = log_p.exp()
        return {
            "the entropy in bits (log base 2) instead of nats": (-(p * log_p).sum(-1) / np.log(2)).numpy(),
            "sum(p * log p) without the minus sign": (p * log_p).sum(-1).numpy(),
            "-sum(p * logits) (logits used as log-probabilities)": (-(p * logits).sum(-1)).numpy(),
            "-sum(log p) (the probabilities' weights are missing)": (-log_p.sum(-1)).numpy(),
        }


ENTROPY_HAND_CASES = [
    ([[0.0, 0.0]], "two equal logits: a fair coin has entropy log 2 = 0.6931 nats"),
    ([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], "4 equal logits, any value: log 4 = 1.3863 nats"),
    ([[0.0, np.log(3.0)]], "probabilities 1/4 and 3/4: -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623"),
    ([[20.0, 0.0, 0.0]], "one logit far above the others: entropy near 0 (4.1e-8 * 21)"),
    ([[1000.0, 1000.0], [1000.0, 0.0]], "logits in the thousands (late in training): log 2 and 0, no overflow"),
]


def categorical_entropy(fn, *, budget_s: float = 5.0) -> None:
    """Check `categorical_entropy(logits [B, n]) -> entropy [B]` (torch, differentiable, in nats)."""
    with Check("ch10.categorical_entropy", "entropy of a categorical policy from its logits",
               hint="H = -sum_a p_a log p_a with log p = torch.log_softmax(logits, dim=-1) (stable for any logits), "
                    f"summed over the last dimension (actions), one value per row, in nats ({LESSON}, section 5).") as check:
        fn = check.signature(fn, "logits")

        def run(logits: torch.Tensor, what: str):
            leaf = logits.clone().requires_grad_(True)
            out = check.call(fn, leaf, budget_s=budget_s, what=what)
            if not isinstance(out, torch.Tensor):
                raise LearnerCodeError(f"{what} returned {describe(out)}; return a torch tensor [B] (the loss needs "
                                       "its gradient), e.g. -(p * log_p).sum(dim=-1).")
            got = _numpy(check, out, what, (logits.shape[0],))
            return leaf, out, got

        # 1. Hand cases.
        for values, why in ENTROPY_HAND_CASES:
            logits = _t(values)
            what = f"categorical_entropy(torch.tensor({values}))"
            _, _, got = run(logits, what)
            want = _ref_entropy(logits).numpy()
            check.require(_close(got, want, atol=1e-7), why, f"{what} returned {_fmt(got, 6)}; expected {_fmt(want, 6)}."
                          + _which_mistake(got, _entropy_mistakes(logits), want))
        # 2. Random logits against the formula, values and gradients.
        rng = np.random.default_rng(10)
        for B, n, scale in ((1, 2, 1.0), (5, 3, 3.0), (64, 2, 10.0), (256, 6, 1.0), (32, 18, 50.0)):
            logits = _t(rng.normal(size=(B, n)) * scale)
            what = f"categorical_entropy(logits [{B}, {n}], scale {scale:g})"
            leaf, out, got = run(logits, what)
            ref_leaf = logits.clone().requires_grad_(True)
            want_t = _ref_entropy(ref_leaf)
            want = want_t.detach().numpy()
            check.require(_close(got, want), f"random logits [{B}, {n}]",
                          f"{what}: entropy {_fmt(got)}, expected {_fmt(want)}." + _which_mistake(got, _entropy_mistakes(logits), want))
            weights = _t(rng.normal(size=B))
            if not out.requires_grad:
                check.require(False, f"random logits [{B}, {n}]: gradient",
                              f"{what} returned a tensor without a gradient: the entropy bonus would not train the "
                              "policy. Compute it with torch operations on the logits (no .detach(), .numpy() or "
                              "torch.no_grad()).")
            (got_grad,) = check.grad(out, [leaf], weights, what=f"backward() through {what}")
            (want_grad,) = torch.autograd.grad((want_t * weights).sum(), ref_leaf)
            check.require(_close(got_grad, want_grad.numpy(), rtol=1e-5, atol=1e-8),
                          f"random logits [{B}, {n}]: gradient with respect to the logits",
                          f"{what}: the values are right but d(entropy)/d(logits) differs from the formula's "
                          f"(first row {_fmt(got_grad[0])}, expected {_fmt(want_grad.numpy()[0])}). Is part of the "
                          "computation detached or done in NumPy?")
        check.note("values and gradients match -sum(p * log_softmax(logits)) on hand and random cases")


# =============================================================================================
# nstep_returns(rewards, next_values, terminated, truncated, gamma) -> [T, N]
# =============================================================================================


def reference_nstep_returns(case: dict, gamma: float) -> np.ndarray:
    """rlcore's n-step returns: lambda-returns with lambda = 1 (reward sums that bootstrap only at a
    truncation and at the end of the rollout)."""
    return ref_returns.lambda_returns(case["rewards"], case["values"], case["next_values"], case["terminated"],
                                      case["truncated"], gamma, 1.0).numpy()


def _nstep_mistakes(case: dict, gamma: float) -> dict:
    """n-step returns as computed by the common mistakes."""
    r, nv = case["rewards"].numpy(), case["next_values"].numpy()
    term, trunc = case["terminated"].numpy(), case["truncated"].numpy()
    T = r.shape[0]

    def backward(step):
        out, ahead = np.zeros_like(r), nv[-1]
        for t in reversed(range(T)):
            out[t] = step(t, ahead)
            ahead = out[t]
        return out

    done = term | trunc
    return {
        "bootstrapping through a terminated step (r + gamma * V(terminal obs): a terminal state has value 0)":
            backward(lambda t, ahead: r[t] + gamma * np.where(done[t], nv[t], ahead)),
        "treating truncation as termination (a time-limit cut must bootstrap from V(final obs))":
            backward(lambda t, ahead: r[t] + gamma * (~done[t]) * ahead),
        "running on into the next episode at a truncation (its return starts from the reset obs; bootstrap "
        "from next_values[t], the value of info['final_obs'])":
            backward(lambda t, ahead: r[t] + gamma * (~term[t]) * ahead),
        "ignoring the episode ends altogether":
            backward(lambda t, ahead: r[t] + gamma * ahead),
        "the bootstrap value at the end of the rollout missing":
            backward(lambda t, ahead: r[t] + gamma * (~term[t]) * np.where(trunc[t], nv[t], ahead if t < T - 1 else 0.0)),
    }


def _hand_rollout(term=(False, False, False), trunc=(False, False, False)) -> dict:
    """T = 3, N = 1: rewards 1, 1, 1; V(final obs) = 5 at t = 1 (where the hand cases end an episode),
    V(obs after the rollout) = 2; values[t + 1] (what the next row's obs is worth) is 3."""
    return {"rewards": _t([[1.0], [1.0], [1.0]]), "values": _t([[0.0], [3.0], [3.0]]),
            "next_values": _t([[3.0], [5.0 if (term[1] or trunc[1]) else 3.0], [2.0]]),
            "terminated": _flags([[x] for x in term]), "truncated": _flags([[x] for x in trunc])}


NSTEP_HAND_CASES = [
    ((False, False, False), (False, False, False),
     "no episode ends: G_2 = 1 + 0.9 * 2 = 2.8, G_1 = 1 + 0.9 * 2.8 = 3.52, G_0 = 4.168 (bootstrap at the end)"),
    ((False, True, False), (False, False, False),
     "terminated at t = 1: G_1 = r_1 = 1 (a terminal state is worth 0), G_0 = 1 + 0.9 * 1 = 1.9"),
    ((False, False, False), (False, True, False),
     "truncated at t = 1: G_1 = 1 + 0.9 * V(final obs) = 1 + 0.9 * 5 = 5.5, G_0 = 1 + 0.9 * 5.5 = 5.95"),
    ((False, True, False), (False, True, False),
     "terminated and truncated at the same step (the pole fell on the last allowed step): terminated wins, G_1 = 1"),
]


def nstep_returns(fn, *, budget_s: float = 5.0) -> None:
    """Check `nstep_returns(rewards, next_values, terminated, truncated, gamma) -> returns [T, N]`."""
    with Check("ch10.nstep_returns", "n-step returns over a [T, N] rollout with terminated vs truncated",
               hint="Go backwards from G = next_values[T-1]: G_t = r_t + gamma * (1 - terminated_t) * X, where X is "
                    "next_values[t] (V of info['final_obs']) if the episode was truncated at t, else G_(t+1) "
                    f"({LESSON}, section 3).") as check:
        fn = check.signature(fn, "rewards", "next_values", "terminated", "truncated", "gamma")

        def run(case: dict, gamma: float, what: str) -> np.ndarray:
            args = _snapshot(case)
            out = check.call(fn, args["rewards"], args["next_values"], args["terminated"], args["truncated"], gamma,
                             budget_s=budget_s, what=what)
            got = _numpy(check, out, what, tuple(case["rewards"].shape))
            changed = [k for k in _unchanged(case, args) if k != "values"]
            check.require(not changed, "the inputs are not modified",
                          f"{what} changed its argument(s) {', '.join(changed)}; write the returns into a new tensor "
                          "(torch.zeros_like(rewards)).")
            return got

        # 1. Hand cases, T = 3, one environment, gamma = 0.9.
        for term, trunc, why in NSTEP_HAND_CASES:
            case = _hand_rollout(term, trunc)
            what = (f"nstep_returns(rewards [[1], [1], [1]], next_values {_fmt(case['next_values'])}, terminated "
                    f"{list(term)}, truncated {list(trunc)}, gamma=0.9)")
            got, want = run(case, 0.9, what), reference_nstep_returns(case, 0.9)
            check.require(_close_rollout(got, want), why, f"{what} returned {_fmt(got, 6)}; expected {_fmt(want, 6)}."
                          + _which_mistake(got, _nstep_mistakes(case, 0.9), want))
        # 2. Random rollouts against rlcore.
        rng = np.random.default_rng(1010)
        for T, N, gamma in ((1, 1, 0.9), (2, 3, 0.99), (5, 4, 0.0), (5, 8, 1.0), (16, 8, 0.95), (64, 16, 0.99), (128, 3, 0.9)):
            case = random_rollout(rng, T, N)
            what = f"nstep_returns on {_shape_text(case)}, gamma={gamma:g}"
            got, want = run(case, gamma, what), reference_nstep_returns(case, gamma)
            wrong = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
            if wrong.any():
                t, i = map(int, np.argwhere(wrong)[0])
                detail = (f"{what}: returns[{t}, {i}] is {got[t, i]:.6g}, expected {want[t, i]:.6g} (at that step "
                          f"terminated={bool(case['terminated'][t, i])}, truncated={bool(case['truncated'][t, i])}).")
                check.require(False, f"random rollout [{T}, {N}], gamma = {gamma:g}",
                              detail + _which_mistake(got, _nstep_mistakes(case, gamma), want))
            check.expect(True, f"random rollout [{T}, {N}], gamma = {gamma:g}")
        check.note("matches rlcore.returns.lambda_returns with lambda = 1 on hand and random rollouts")


# =============================================================================================
# compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam) -> [T, N]
# =============================================================================================


def reference_gae(case: dict, gamma: float, lam: float) -> np.ndarray:
    return ref_returns.gae(case["rewards"], case["values"], case["next_values"], case["terminated"],
                           case["truncated"], gamma, lam).numpy()


def _gae_mistakes(case: dict, gamma: float, lam: float) -> dict:
    r, v, nv = (case[k].numpy() for k in ("rewards", "values", "next_values"))
    term, trunc = case["terminated"].numpy(), case["truncated"].numpy()
    T = r.shape[0]
    done = term | trunc
    delta = r + gamma * (~term) * nv - v

    def backward(deltas, decay, cut):
        out, run = np.zeros_like(r), np.zeros_like(r[0])
        for t in reversed(range(T)):
            run = deltas[t] + decay * (cut[t] if cut is not None else 1.0) * run
            out[t] = run
        return out

    forward, run = np.zeros_like(r), np.zeros_like(r[0])
    for t in range(T):
        run = delta[t] + gamma * lam * (~done[t]) * run
        forward[t] = run
    return {
        "lambda and gamma swapped (delta discounts V(s') with lambda)":
            backward(r + lam * (~term) * nv - v, gamma * lam, ~done),
        "the sum not cut where an episode ended (the (1 - done) factor is missing)": backward(delta, gamma * lam, None),
        "the sum cut only at terminated steps (truncation also ends the episode's sum)": backward(delta, gamma * lam, ~term),
        "advantages accumulated forward in time (A_t sums the PAST TD errors: go backwards)": forward,
        "a decay of lambda alone (gamma * lambda decays the sum)": backward(delta, lam, ~done),
        "the one-step TD errors (lambda ignored)": delta,
    }


def _gae_hand(term=(False, False, False), trunc=(False, False, False)) -> dict:
    """T = 3, N = 1: rewards 1, 0, 2; values 1, 2, 1; next_values 2, 1, 3 (V(final obs) = 4 at t = 1 when it ends)."""
    ended = term[1] or trunc[1]
    return {"rewards": _t([[1.0], [0.0], [2.0]]), "values": _t([[1.0], [2.0], [1.0]]),
            "next_values": _t([[2.0], [4.0 if ended else 1.0], [3.0]]),
            "terminated": _flags([[x] for x in term]), "truncated": _flags([[x] for x in trunc])}


GAE_HAND_CASES = [
    ((False,) * 3, (False,) * 3, 0.5, 0.0,
     "lambda = 0 gives the one-step TD errors delta_t = r_t + gamma * V(s_(t+1)) - V(s_t): [1, -1.5, 2.5]"),
    ((False,) * 3, (False,) * 3, 0.5, 1.0,
     "lambda = 1 gives n-step returns minus V: [0.875, -0.25, 2.5]"),
    ((False,) * 3, (False,) * 3, 0.5, 0.5,
     "gamma = 0.5, lambda = 0.5: A_2 = 2.5, A_1 = -1.5 + 0.25 * 2.5 = -0.875, A_0 = 1 - 0.25 * 0.875 = 0.78125"),
    ((False, True, False), (False,) * 3, 0.5, 0.5,
     "terminated at t = 1: delta_1 = 0 - 2 = -2 (no bootstrap) and the sum stops: A_1 = -2, A_0 = 1 - 0.25 * 2 = 0.5"),
    ((False,) * 3, (False, True, False), 0.5, 0.5,
     "truncated at t = 1: delta_1 = 0 + 0.5 * 4 - 2 = 0 (bootstrap from V(final obs) = 4), then the sum stops: A_0 = 1"),
]


def compute_gae(fn, *, budget_s: float = 5.0) -> None:
    """Check `compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam) -> advantages [T, N]`."""
    with Check("ch10.compute_gae", "generalized advantage estimation over a [T, N] rollout",
               hint="delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t; then backwards, "
                    "A_t = delta_t + gamma * lam * (1 - done_t) * A_(t+1) with done = terminated | truncated and "
                    f"A_T = 0 ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "rewards", "values", "next_values", "terminated", "truncated", "gamma", "lam")

        def run(case: dict, gamma: float, lam: float, what: str) -> np.ndarray:
            args = _snapshot(case)
            out = check.call(fn, args["rewards"], args["values"], args["next_values"], args["terminated"],
                             args["truncated"], gamma, lam, budget_s=budget_s, what=what)
            got = _numpy(check, out, what, tuple(case["rewards"].shape))
            changed = _unchanged(case, args)
            check.require(not changed, "the inputs are not modified",
                          f"{what} changed its argument(s) {', '.join(changed)}; write the advantages into a new "
                          "tensor (torch.zeros_like(rewards)).")
            return got

        # 1. Hand cases.
        for term, trunc, gamma, lam, why in GAE_HAND_CASES:
            case = _gae_hand(term, trunc)
            what = (f"compute_gae(rewards [1, 0, 2], values [1, 2, 1], next_values {_fmt(case['next_values'])}, "
                    f"terminated {list(term)}, truncated {list(trunc)}, gamma={gamma:g}, lam={lam:g})")
            got, want = run(case, gamma, lam, what), reference_gae(case, gamma, lam)
            check.require(_close_rollout(got, want), why, f"{what} returned {_fmt(got, 6)}; expected {_fmt(want, 6)}."
                          + _which_mistake(got, _gae_mistakes(case, gamma, lam), want))
        # 2. Random rollouts against rlcore.
        rng = np.random.default_rng(1011)
        for T, N, gamma, lam in ((1, 1, 0.9, 0.95), (3, 2, 0.99, 0.0), (5, 4, 0.99, 1.0), (8, 8, 0.9, 0.7),
                                 (16, 4, 0.99, 0.95), (128, 8, 0.98, 0.8), (64, 2, 1.0, 0.5)):
            case = random_rollout(rng, T, N)
            what = f"compute_gae on {_shape_text(case)}, gamma={gamma:g}, lam={lam:g}"
            got, want = run(case, gamma, lam, what), reference_gae(case, gamma, lam)
            wrong = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
            if wrong.any():
                t, i = map(int, np.argwhere(wrong)[0])
                detail = (f"{what}: advantages[{t}, {i}] is {got[t, i]:.6g}, expected {want[t, i]:.6g} (at that step "
                          f"terminated={bool(case['terminated'][t, i])}, truncated={bool(case['truncated'][t, i])}).")
                check.require(False, f"random rollout [{T}, {N}], gamma = {gamma:g}, lambda = {lam:g}",
                              detail + _which_mistake(got, _gae_mistakes(case, gamma, lam), want))
            check.expect(True, f"random rollout [{T}, {N}], gamma = {gamma:g}, lambda = {lam:g}")
        check.note("matches rlcore.returns.gae on hand and random rollouts, lambda from 0 to 1")


# =============================================================================================
# a2c_loss(logprobs, entropy, values, returns, vf_coef, ent_coef) -> scalar tensor
# =============================================================================================

LOSS_INPUTS = ("logprobs", "entropy", "values")


def reference_a2c_loss(logprobs, entropy, values, returns, vf_coef: float, ent_coef: float) -> torch.Tensor:
    """rlcore.a2c's loss: -mean(log pi * A) + vf_coef * mean((G - V)^2) / 2 - ent_coef * mean(H), A = (G - V) detached."""
    advantages = (returns - values).detach()
    policy_loss = -(logprobs * advantages).mean()
    value_loss = 0.5 * ((returns - values) ** 2).mean()
    return policy_loss + vf_coef * value_loss - ent_coef * entropy.mean()


def _loss_mistakes(inputs: dict, returns: torch.Tensor, vf_coef: float, ent_coef: float) -> dict:
    """(value, gradients) of the loss as computed by common mistakes."""
    def evaluate(make):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        loss = make(leaves["logprobs"], leaves["entropy"], leaves["values"])
        grads = torch.autograd.grad(loss, [leaves[k] for k in LOSS_INPUTS], allow_unused=True)
        return float(loss), [np.zeros(returns.shape) if g is None else g.numpy() for g in grads]

    G = returns
    return {
        "the advantage not detached (the policy term then pushes the critic's values too)":
            evaluate(lambda lp, h, v: -(lp * (G - v)).mean() + vf_coef * 0.5 * ((G - v) ** 2).mean() - ent_coef * h.mean()),
        "the entropy bonus with the wrong sign (+ ent_coef * entropy penalises exploration)":
            evaluate(lambda lp, h, v: -(lp * (G - v).detach()).mean() + vf_coef * 0.5 * ((G - v) ** 2).mean() + ent_coef * h.mean()),
        "the value loss regressing V onto the advantages instead of the returns":
            evaluate(lambda lp, h, v: -(lp * (G - v).detach()).mean()
                     + vf_coef * 0.5 * (((G - v).detach() - v) ** 2).mean() - ent_coef * h.mean()),
        "the policy term with the wrong sign (gradient ascent on the loss)":
            evaluate(lambda lp, h, v: (lp * (G - v).detach()).mean() + vf_coef * 0.5 * ((G - v) ** 2).mean() - ent_coef * h.mean()),
        "the value loss without the factor 1/2":
            evaluate(lambda lp, h, v: -(lp * (G - v).detach()).mean() + vf_coef * ((G - v) ** 2).mean() - ent_coef * h.mean()),
        "sums instead of means over the batch":
            evaluate(lambda lp, h, v: -(lp * (G - v).detach()).sum() + vf_coef * 0.5 * ((G - v) ** 2).sum() - ent_coef * h.sum()),
    }


def _loss_case(rng: np.random.Generator, B: int) -> tuple[dict, torch.Tensor]:
    logits = rng.normal(size=(B, 2))
    log_p = logits - np.logaddexp(logits[:, :1], logits[:, 1:])
    entropy = -(np.exp(log_p) * log_p).sum(-1)
    inputs = {"logprobs": _t(log_p[np.arange(B), rng.integers(0, 2, size=B)]), "entropy": _t(entropy),
              "values": _t(rng.normal(size=B) * 5.0)}
    return inputs, _t(rng.normal(size=B) * 10.0)


def a2c_loss(fn, *, budget_s: float = 5.0) -> None:
    """Check `a2c_loss(logprobs, entropy, values, returns, vf_coef, ent_coef) -> loss` (a scalar tensor)."""
    with Check("ch10.a2c_loss", "the actor-critic loss: policy term, value regression, entropy bonus",
               hint="loss = -mean(logprobs * A) + vf_coef * 0.5 * mean((returns - values)^2) - ent_coef * mean(entropy), "
                    f"with A = (returns - values).detach() ({LESSON}, section 6).") as check:
        fn = check.signature(fn, "logprobs", "entropy", "values", "returns", "vf_coef", "ent_coef")

        def run(inputs: dict, returns: torch.Tensor, vf_coef: float, ent_coef: float, what: str):
            leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
            target = returns.clone()
            out = check.call(fn, leaves["logprobs"], leaves["entropy"], leaves["values"], target, vf_coef, ent_coef,
                             budget_s=budget_s, what=what)
            if not isinstance(out, torch.Tensor):
                raise LearnerCodeError(f"{what} returned {describe(out)}; return the loss as a torch tensor with one "
                                       "element, so that loss.backward() can train the networks.")
            check.require(out.numel() == 1, "the loss is one number",
                          f"{what} returned a tensor of shape {tuple(out.shape)}; take the mean over the batch so the "
                          "loss is a scalar.")
            value = float(_numpy(check, out.reshape(()), what, ()))
            check.require(out.requires_grad, "the loss carries gradients",
                          f"{what} returned a loss with no gradient: compute it from the tensors you were given, "
                          "without .detach() on logprobs or values, .item() or NumPy.")
            grads = check.grad(out, [leaves[k] for k in LOSS_INPUTS], what="loss.backward()")
            check.require(torch.equal(target, returns), "returns is not modified",
                          f"{what} changed the returns tensor in place.")
            return value, grads

        def compare(inputs, returns, vf_coef, ent_coef, what, name):
            value, grads = run(inputs, returns, vf_coef, ent_coef, what)
            leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
            ref = reference_a2c_loss(leaves["logprobs"], leaves["entropy"], leaves["values"], returns, vf_coef, ent_coef)
            want_grads = [g.numpy() for g in torch.autograd.grad(ref, [leaves[k] for k in LOSS_INPUTS])]
            mistakes = _loss_mistakes(inputs, returns, vf_coef, ent_coef)
            matches = [m for m, (mv, mg) in mistakes.items()
                       if np.isclose(mv, value, rtol=1e-6, atol=1e-9) and all(_close(a, b) for a, b in zip(mg, grads))]
            known = f" Your loss behaves like {' or '.join(matches)}." if matches else ""
            check.require(np.isclose(value, float(ref), rtol=1e-6, atol=1e-9), f"{name}: the loss value",
                          f"{what} returned {value:.6g}; expected {float(ref):.6g}." + known)
            for key, got_g, want_g in zip(LOSS_INPUTS, grads, want_grads):
                check.require(_close(got_g, want_g), f"{name}: d loss / d {key}",
                              f"{what}: the loss value is right but its gradient with respect to {key} is "
                              f"{_fmt(got_g)}, expected {_fmt(want_g)}." + known
                              + (" The advantage must be a constant in the policy term: (returns - values).detach()."
                                 if key == "values" and not known else ""))
            check.expect(True, name)

        # 1. Hand case, B = 2: A = [1, -1]; policy term -mean([-0.5 * 1, -1 * -1]) = -0.25; value term 0.5 * 0.5 * 1;
        #    entropy term -0.01 * 0.5. Loss -0.005. d/d values = vf_coef * (V - G) / B = [-0.25, 0.25].
        hand = {"logprobs": _t([-0.5, -1.0]), "entropy": _t([0.6, 0.4]), "values": _t([1.0, 2.0])}
        compare(hand, _t([2.0, 1.0]), 0.5, 0.01,
                "a2c_loss(logprobs [-0.5, -1], entropy [0.6, 0.4], values [1, 2], returns [2, 1], vf_coef=0.5, "
                "ent_coef=0.01)", "hand case: loss -0.25 + 0.25 - 0.005 = -0.005")
        # 2. Random batches, coefficients as used in practice and extreme ones (each term alone).
        rng = np.random.default_rng(1012)
        for B, vf_coef, ent_coef in ((1, 0.5, 0.0), (8, 0.5, 0.01), (64, 1.0, 0.1), (256, 0.25, 0.5), (40, 0.0, 0.0),
                                     (40, 2.0, 1.0)):
            inputs, returns = _loss_case(rng, B)
            compare(inputs, returns, vf_coef, ent_coef,
                    f"a2c_loss on a random batch of {B}, vf_coef={vf_coef:g}, ent_coef={ent_coef:g}",
                    f"random batch of {B}, vf_coef = {vf_coef:g}, ent_coef = {ent_coef:g}")
        check.note("the value and its gradients with respect to logprobs, entropy and values match rlcore.a2c's loss")


# =============================================================================================
# The training loop: a learning curve on CartPole-v1
# =============================================================================================


def curve_task() -> deeprl.CurveTask:
    """The curve check's settings, with our rlcore reference and the margin of section 6.4 from our SD."""
    ref = load_reference()["cartpole"]
    final = ref["final"]
    delta = stats.noninferiority_delta(final["mean"], final["sd"], RANDOM_RETURN)
    return deeprl.CurveTask(
        check_id="ch10.train_a2c", title=f"your A2C loop learns {CURVE_ENV} in {TOTAL_TIMESTEPS:,} steps",
        env_id=CURVE_ENV, num_envs=NUM_ENVS, total_timesteps=TOTAL_TIMESTEPS, seeds=VISIBLE_SEEDS,
        published_mean=final["mean"], delta=delta,
        published_label=(f"our rlcore A2C reference {final['mean']:.1f} over {final['n']} seeds (no multi-seed "
                         "published A2C number exists)"),
        best_return=500.0, random_return=RANDOM_RETURN, reference=ref, lesson=LESSON, sections=SECTIONS,
        hint=(f"Each update: {NUM_ENVS} envs x NUM_STEPS steps with actions sampled from softmax(logits); next_values "
              "from V(info['final_obs']); returns and advantages from your compute_gae (or nstep_returns); one "
              "RMSprop step on a2c_loss with the gradient norm clipped. Log losses/entropy, losses/value_loss and "
              f"losses/explained_variance so a failure can be diagnosed ({LESSON}, section 7)."))


def train_a2c(fn) -> None:
    """Grade `train_a2c(envs, seed, total_timesteps, log)` on CartPole-v1 over 7 seeds."""
    deeprl.curve_check(curve_task(), fn, n_actions=2)
