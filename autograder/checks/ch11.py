"""Checks for chapter 11, PPO.

Unit checks, each against the expressions of rlcore/ppo.py (restated below as `reference_*` so a
message can show the expected numbers) on hand-computed cases first, then on random batches; where a
piece feeds the optimizer, its gradient is checked too, since a loss with the right value and the
wrong gradient trains a different policy:

- `probability_ratio`: r = exp(log pi_new - log pi_old);
- `clipped_policy_loss`: the pessimistic max of the negated unclipped and clipped surrogates;
- `value_loss`: 0.5 * squared error, optionally clipped around the values seen at collection time;
- `normalize_advantages`: per-minibatch (A - mean) / (std + 1e-8);
- `approx_kl_and_clipfrac`: the k3 estimator mean((r - 1) - log r) and the fraction |r - 1| > clip;
- `minibatch_indices`: one epoch's shuffled split of the batch into minibatches.

Learning curves (`autograder.deeprl.curve_check`): the learner's whole loop
`train_ppo(envs, seed, total_timesteps, log)` on CartPole-v1 and Acrobot-v1, graded by one-sided
non-inferiority against CleanRL's published PPO scores (published_results.md section 2) with the
margin of section 6.4, on shorter budgets than CleanRL's 500k steps with the hyperparameters
`SETTINGS` (the exercise uses them; our references in ch11_ppo.json were made with them).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from autograder import deeprl, stats
from autograder.protocol import Check, LearnerCodeError, describe

LESSON = "lesson 11 (course/11_ppo.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch11_ppo.json"

# Lesson section titles the diagnoses point at (the lesson has exactly these headings).
SECTIONS = {
    "flat": "7.1 Flat at the random baseline",
    "entropy": "7.2 Entropy collapsed",
    "kl": "7.3 KL exploded",
    "clip": "7.4 Clip fraction at zero",
    "value": "7.5 Negative explained variance",
    "nan": "7.6 NaN losses",
    "speed": "7.7 Too slow",
}

# =============================================================================================
# The grading settings: one set of hyperparameters for both environments
# =============================================================================================

# The exercise's loop reads these (ch11.SETTINGS). They follow rlcore.ppo.CARTPOLE_FAST (32 environments in
# one batch, one 512-sample minibatch, 8 epochs, lr 3e-3 annealed, no entropy bonus, no value clipping), which
# also solves Acrobot-v1; see autograder/references/gen_ch11.py for how they were chosen and measured.
SETTINGS = dict(num_steps=16, num_minibatches=1, update_epochs=8, learning_rate=3e-3, anneal_lr=True,
                gamma=0.98, gae_lambda=0.8, clip_coef=0.2, clip_vloss=False, ent_coef=0.0, vf_coef=0.5,
                max_grad_norm=0.5, norm_adv=True)
NUM_ENVS = 32
CARTPOLE_STEPS = 150_000
ACROBOT_STEPS = 100_000
VISIBLE_SEEDS = (1, 2, 3, 4, 5, 6, 7)


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our rlcore reference runs (autograder/references/ch11_ppo.json)."""
    return json.loads(REFERENCE_FILE.read_text())


# =============================================================================================
# The reference expressions (those of rlcore/ppo.py's update, one function each)
# =============================================================================================


def reference_ratio(new_logprob: torch.Tensor, old_logprob: torch.Tensor) -> torch.Tensor:
    """r = pi_new(a|s) / pi_old(a|s) = exp(log pi_new - log pi_old), [B]."""
    return (new_logprob - old_logprob).exp()


def reference_policy_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """mean(max(-A r, -A clip(r, 1 - eps, 1 + eps))): the negated clipped surrogate, a scalar."""
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(loss1, loss2).mean()


def reference_value_loss(new_values, old_values, returns, clip_coef: float, clip_vloss: bool) -> torch.Tensor:
    """0.5 * mean((V - R)^2), or with clip_vloss the max of that and the error of V clipped to
    old_values +- clip_coef (as rlcore/ppo.py and CleanRL), a scalar."""
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped - returns) ** 2).mean()


def reference_normalize(advantages: torch.Tensor) -> torch.Tensor:
    """(A - mean) / (std + 1e-8) with torch's (unbiased) std, [B]."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def reference_kl_clipfrac(logratio: torch.Tensor, clip_coef: float) -> tuple[float, float]:
    """(mean((r - 1) - log r), mean(|r - 1| > clip_coef)) with r = exp(logratio)."""
    ratio = logratio.exp()
    return float(((ratio - 1) - logratio).mean()), float(((ratio - 1.0).abs() > clip_coef).float().mean())


# =============================================================================================
# Helpers
# =============================================================================================


def _fmt(values, digits: int = 4) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    if flat.size > 6:
        return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:4]) + f", ... ({flat.size} values)]"
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


def _close(got, want, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol))


def _which_mistake(got, mistakes: dict, want) -> str:
    names = [name for name, value in mistakes.items()
             if _close(got, value) and not _close(value, want)]
    return f" Your answer equals {' or '.join(names)}." if names else ""


def _tensor(check: Check, value, what: str, shape: tuple) -> torch.Tensor:
    """The learner's output as a finite float tensor of the given shape (a clear message otherwise)."""
    if value is None:
        raise LearnerCodeError(f"{what} returned None. Did you forget a `return` statement?")
    if not isinstance(value, torch.Tensor):
        raise LearnerCodeError(
            f"{what} returned {describe(value)} ({type(value).__name__}); return a torch tensor computed from the "
            "inputs with torch operations, so that the optimizer can follow its gradient.")
    if tuple(value.shape) != tuple(shape):
        extra = " (a scalar: take the .mean() over the minibatch)" if shape == () else ""
        raise LearnerCodeError(f"{what} returned a tensor of shape {tuple(value.shape)}; expected {tuple(shape)}{extra}.")
    if not torch.isfinite(value.detach()).all():
        raise LearnerCodeError(f"{what} returned NaN or infinite values. Look for the log of 0 or a division by 0.")
    return value


def _leaf(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32, requires_grad=True)


def _grad(check: Check, out: torch.Tensor, leaf: torch.Tensor, what: str, name: str) -> np.ndarray:
    """d out / d leaf, or a clear message when the output is cut off from the input."""
    if not out.requires_grad:
        raise LearnerCodeError(
            f"{what}: the result carries no gradient with respect to {name}. Use torch operations on the inputs "
            "(no .item(), .numpy(), .detach() or torch.tensor(...) rebuilding), so loss.backward() reaches the network.")
    (grad,) = check.grad(out, [leaf], what=f"backward() through {what}")
    return grad


# =============================================================================================
# probability_ratio(new_logprob, old_logprob) -> ratio [B]
# =============================================================================================


def _ratio_mistakes(new: np.ndarray, old: np.ndarray) -> dict:
    return {
        "exp(new - new) = 1 everywhere (the new log-probability on both sides: compare with the stored old one)":
            np.ones_like(new),
        "exp(old - new) (old and new swapped: the ratio is pi_new / pi_old)": np.exp(old - new),
        "new - old without exp (that is log r)": new - old,
        "new / old (a ratio of log-probabilities, not of probabilities)": new / old,
    }


def probability_ratio(fn, *, budget_s: float = 5.0) -> None:
    """Check `probability_ratio(new_logprob, old_logprob) -> ratio [B]`."""
    with Check("ch11.probability_ratio", "probability ratio r = pi_new(a|s) / pi_old(a|s) from log-probabilities",
               hint=f"r = exp(new_logprob - old_logprob): new_logprob comes from the network being updated, "
                    f"old_logprob was stored when the action was taken ({LESSON}, section 2).") as check:
        fn = check.signature(fn, "new_logprob", "old_logprob")
        rng = np.random.default_rng(110)
        cases = [
            ("pi_new = 0.5, pi_old = 0.25 gives r = 2 (and 0.5 the other way)", np.log([0.5, 0.25]),
             np.log([0.25, 0.5])),
            ("equal log-probabilities give r = 1", np.log([0.5, 0.25]), np.log([0.5, 0.25])),
        ]
        for _ in range(6):
            B = int(rng.integers(3, 300))
            old = np.log(rng.uniform(0.02, 1.0, B))
            cases.append((f"random batch of {B}", old + rng.normal(0, 0.3, B), old))
        for name, new, old in cases:
            new_t, old_t = _leaf(new), torch.tensor(old, dtype=torch.float32)
            what = f"probability_ratio(new_logprob={_fmt(new)}, old_logprob={_fmt(old)})"
            out = _tensor(check, check.call(fn, new_t, old_t, budget_s=budget_s, what=what), what, new.shape)
            got = out.detach().numpy()
            want = reference_ratio(torch.tensor(new, dtype=torch.float32), old_t).numpy()
            check.require(_close(got, want), name, f"{what} returned {_fmt(got)}; expected {_fmt(want)}."
                          + _which_mistake(got, _ratio_mistakes(new, old), want))
            grad = _grad(check, out, new_t, what, "new_logprob")
            check.require(_close(grad, want), f"{name}: gradient",
                          f"d r / d new_logprob should be r itself ({_fmt(want)}), got {_fmt(grad)}: the ratio must be "
                          "computed from new_logprob with torch operations so the policy gradient flows through it.")
        check.note("the ratio and its gradient match rlcore on hand and random cases")


# =============================================================================================
# clipped_policy_loss(ratio, advantages, clip_coef) -> scalar
# =============================================================================================

# One sample each, smallest first: the four regions of the clipped objective (lesson section 3).
POLICY_HAND_CASES = [
    (1.0, 1.0, 0.2, "r = 1: the loss is -A r = -1"),
    (1.5, 1.0, 0.2, "A > 0, r = 1.5 above 1 + eps: clipped, loss -1.2 and no gradient"),
    (0.5, 1.0, 0.2, "A > 0, r = 0.5 below 1 - eps: not clipped (pessimistic), loss -0.5, gradient -1"),
    (1.5, -1.0, 0.2, "A < 0, r = 1.5 above 1 + eps: not clipped (pessimistic), loss 1.5, gradient +1"),
    (0.5, -1.0, 0.2, "A < 0, r = 0.5 below 1 - eps: clipped, loss 0.8 and no gradient"),
]


def _policy_mistakes(r: np.ndarray, A: np.ndarray, eps: float) -> dict:
    clipped = np.clip(r, 1 - eps, 1 + eps)
    return {
        "min instead of max of the negated terms (the optimistic bound)": np.minimum(-A * r, -A * clipped).mean(),
        "the objective without the minus sign (gradient descent would then lower the surrogate)":
            np.minimum(A * r, A * clipped).mean(),
        "the clip applied to the advantage instead of the ratio": np.maximum(-A * r, -np.clip(A, 1 - eps, 1 + eps) * r).mean(),
        "the clipped term alone (no max with the unclipped one)": (-A * clipped).mean(),
        "the unclipped surrogate alone (the clip is never used)": (-A * r).mean(),
        "a sum instead of the mean over the minibatch": np.maximum(-A * r, -A * clipped).sum(),
    }


def clipped_policy_loss(fn, *, budget_s: float = 5.0) -> None:
    """Check `clipped_policy_loss(ratio, advantages, clip_coef) -> scalar tensor`."""
    with Check("ch11.clipped_policy_loss", "clipped surrogate policy loss (PPO-clip)",
               hint=f"loss = mean(max(-A * r, -A * clamp(r, 1 - clip_coef, 1 + clip_coef))): the max of the "
                    f"NEGATED terms is the min of the objective, the pessimistic bound ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "ratio", "advantages", "clip_coef")
        rng = np.random.default_rng(111)
        cases = [(name, np.array([r]), np.array([A]), eps) for r, A, eps, name in POLICY_HAND_CASES]
        for _ in range(8):
            B = int(rng.integers(4, 600))
            eps = float(rng.choice([0.1, 0.2, 0.3]))
            cases.append((f"random minibatch of {B}, clip_coef {eps}", np.exp(rng.normal(0, 0.3, B)),
                          rng.normal(0, 1.5, B), eps))
        for name, r, A, eps in cases:
            r_t, A_t = _leaf(r), torch.tensor(A, dtype=torch.float32)
            what = f"clipped_policy_loss(ratio={_fmt(r)}, advantages={_fmt(A)}, clip_coef={eps:g})"
            out = _tensor(check, check.call(fn, r_t, A_t, eps, budget_s=budget_s, what=what), what, ())
            got = float(out.detach())
            ref_r = torch.tensor(r, dtype=torch.float32, requires_grad=True)
            ref = reference_policy_loss(ref_r, A_t, eps)
            ref.backward()
            want = float(ref.detach())
            check.require(_close(got, want), name, f"{what} returned {got:.6g}; expected {want:.6g}."
                          + _which_mistake(got, _policy_mistakes(r, A, eps), want))
            grad = _grad(check, out, r_t, what, "ratio")
            check.require(_close(grad, ref_r.grad.numpy()), f"{name}: gradient",
                          f"the gradient with respect to the ratio is {_fmt(grad)}; expected {_fmt(ref_r.grad.numpy())} "
                          "(zero exactly where the clipped term is the one the max picks).")
        check.note("loss values and gradients match rlcore in all four regions and on random minibatches")


# =============================================================================================
# value_loss(new_values, old_values, returns, clip_coef, clip_vloss) -> scalar
# =============================================================================================

VALUE_HAND_CASES = [
    (0.5, 0.0, 1.0, 0.2, False, "unclipped: 0.5 * (0.5 - 1)^2 = 0.125"),
    (0.5, 0.0, 1.0, 0.2, True, "clipped: V moved 0.5 from V_old = 0, clipped to 0.2; max(0.25, 0.64) / 2 = 0.32, no gradient"),
    (-0.5, 0.0, 1.0, 0.2, True, "clipped: V moved away from the target; max(2.25, 1.44) / 2 = 1.125, gradient -1.5"),
    (0.1, 0.0, 1.0, 0.2, True, "clipped: V within V_old +- 0.2, so both terms agree: 0.5 * 0.81 = 0.405"),
]


def _value_mistakes(v, v_old, R, eps, clip_vloss) -> dict:
    clipped = v_old + np.clip(v - v_old, -eps, eps)
    out = {
        "(V - R)^2 without the factor 0.5": ((v - R) ** 2).mean(),
        "the clipped loss although clip_vloss is False": 0.5 * np.maximum((v - R) ** 2, (clipped - R) ** 2).mean(),
        "the unclipped loss although clip_vloss is True": 0.5 * ((v - R) ** 2).mean(),
        "min instead of max of the two squared errors": 0.5 * np.minimum((v - R) ** 2, (clipped - R) ** 2).mean(),
        "V clipped around the returns instead of around old_values":
            0.5 * np.maximum((v - R) ** 2, np.clip(v - R, -eps, eps) ** 2).mean(),
        "V itself clamped to [-clip_coef, clip_coef]": 0.5 * np.maximum((v - R) ** 2, (np.clip(v, -eps, eps) - R) ** 2).mean(),
    }
    if clip_vloss:
        out.pop("the clipped loss although clip_vloss is False")
    else:
        out.pop("the unclipped loss although clip_vloss is True")
    return out


def value_loss(fn, *, budget_s: float = 5.0) -> None:
    """Check `value_loss(new_values, old_values, returns, clip_coef, clip_vloss) -> scalar tensor`."""
    with Check("ch11.value_loss", "value loss, optionally clipped around the old values",
               hint=f"0.5 * mean((V - R)^2); with clip_vloss, V_clip = old_values + clamp(V - old_values, -clip_coef, "
                    f"clip_coef) and the loss is 0.5 * mean(max((V - R)^2, (V_clip - R)^2)) ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "new_values", "old_values", "returns", "clip_coef", "clip_vloss")
        rng = np.random.default_rng(112)
        cases = [(name, np.array([v]), np.array([vo]), np.array([R]), eps, cv)
                 for v, vo, R, eps, cv, name in VALUE_HAND_CASES]
        for k in range(8):
            B = int(rng.integers(4, 600))
            v_old = rng.normal(0, 5, B)
            cases.append((f"random minibatch of {B}, clip_vloss {bool(k % 2)}", v_old + rng.normal(0, 0.4, B), v_old,
                          v_old + rng.normal(0, 2, B), 0.2, bool(k % 2)))
        for name, v, v_old, R, eps, cv in cases:
            v_t = _leaf(v)
            old_t, R_t = torch.tensor(v_old, dtype=torch.float32), torch.tensor(R, dtype=torch.float32)
            what = (f"value_loss(new_values={_fmt(v)}, old_values={_fmt(v_old)}, returns={_fmt(R)}, clip_coef={eps:g}, "
                    f"clip_vloss={cv})")
            out = _tensor(check, check.call(fn, v_t, old_t, R_t, eps, cv, budget_s=budget_s, what=what), what, ())
            got = float(out.detach())
            ref_v = torch.tensor(v, dtype=torch.float32, requires_grad=True)
            ref = reference_value_loss(ref_v, old_t, R_t, eps, cv)
            ref.backward()
            want = float(ref.detach())
            check.require(_close(got, want), name, f"{what} returned {got:.6g}; expected {want:.6g}."
                          + _which_mistake(got, _value_mistakes(v, v_old, R, eps, cv), want))
            grad = _grad(check, out, v_t, what, "new_values")
            check.require(_close(grad, ref_v.grad.numpy()), f"{name}: gradient",
                          f"the gradient with respect to new_values is {_fmt(grad)}; expected {_fmt(ref_v.grad.numpy())}.")
        check.note("the plain and the clipped value loss match rlcore, values and gradients")


# =============================================================================================
# normalize_advantages(advantages) -> [B]
# =============================================================================================


def _norm_mistakes(A: np.ndarray) -> dict:
    return {
        "a division by the population std (ddof=0): torch's .std() and rlcore use the unbiased one (n - 1)":
            (A - A.mean()) / (A.std() + 1e-8),
        "no mean subtracted": A / (A.std(ddof=1) + 1e-8),
        "a division by the variance instead of the standard deviation": (A - A.mean()) / (A.var(ddof=1) + 1e-8),
        "the mean subtracted but not divided by the std": A - A.mean(),
    }


def normalize_advantages(fn, *, budget_s: float = 5.0) -> None:
    """Check `normalize_advantages(advantages) -> [B]`, applied to each minibatch."""
    with Check("ch11.normalize_advantages", "advantage normalization within a minibatch",
               hint=f"(A - A.mean()) / (A.std() + 1e-8): torch's unbiased std, and the 1e-8 keeps a minibatch of "
                    f"equal advantages finite ({LESSON}, section 5).") as check:
        fn = check.signature(fn, "advantages")
        rng = np.random.default_rng(113)
        cases = [
            ("[1, 2, 3]: mean 2, unbiased std 1, so [-1, 0, 1]", np.array([1.0, 2.0, 3.0])),
            ("[-4, 0, 0, 4]", np.array([-4.0, 0.0, 0.0, 4.0])),
            ("equal advantages [5, 5, 5, 5] become zeros, not NaN", np.full(4, 5.0)),
        ]
        for _ in range(6):
            B = int(rng.integers(2, 800))
            cases.append((f"random minibatch of {B}", rng.normal(rng.normal(0, 10), rng.uniform(0.1, 20), B)))
        for name, A in cases:
            A_t = torch.tensor(A, dtype=torch.float32)
            before = A_t.clone()
            what = f"normalize_advantages({_fmt(A)})"
            got = _tensor(check, check.call(fn, A_t, budget_s=budget_s, what=what), what, A.shape).detach().numpy()
            want = reference_normalize(before).numpy()
            check.require(_close(got, want, rtol=1e-4, atol=1e-5), name,
                          f"{what} returned {_fmt(got)}; expected {_fmt(want)}." + _which_mistake(got, _norm_mistakes(A), want))
            check.require(torch.equal(A_t, before), f"{name}: input unchanged",
                          "the advantages passed in were modified in place; the caller's batch must stay as it was "
                          "(each epoch normalizes its minibatches afresh). Compute into a new tensor.")
        check.note("matches rlcore's per-minibatch normalization, including a constant minibatch")


# =============================================================================================
# approx_kl_and_clipfrac(logratio, clip_coef) -> (approx_kl, clipfrac)
# =============================================================================================


def _kl_mistakes(logratio: np.ndarray, eps: float) -> dict:
    r = np.exp(logratio)
    kl = ((r - 1) - logratio).mean()
    frac = (np.abs(r - 1) > eps).mean()
    return {
        "approx_kl = mean(-log r) (the k1 estimator, which can be negative; use (r - 1) - log r)": ((-logratio).mean(), frac),
        "approx_kl with the sign flipped (it must be >= 0)": (-kl, frac),
        "clipfrac counting only r > 1 + clip (r < 1 - clip is clipped too)": (kl, (r > 1 + eps).mean()),
        "clipfrac from |log r| > clip instead of |r - 1| > clip": (kl, (np.abs(logratio) > eps).mean()),
        "clipfrac as a count instead of a fraction": (kl, (np.abs(r - 1) > eps).sum()),
    }


def _scalar(check: Check, value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise LearnerCodeError(f"{what}: got a tensor of shape {tuple(value.shape)}; expected one number (a mean).")
        value = value.detach().item()
    return float(check.array(value, what, shape=()))


def approx_kl_and_clipfrac(fn, *, budget_s: float = 5.0) -> None:
    """Check `approx_kl_and_clipfrac(logratio, clip_coef) -> (approx_kl, clipfrac)`."""
    with Check("ch11.approx_kl_and_clipfrac", "diagnostics: approximate KL and clip fraction",
               hint=f"approx_kl = mean((r - 1) - log r) (>= 0 for every sample) and clipfrac = mean(|r - 1| > clip_coef), "
                    f"with r = exp(logratio) ({LESSON}, section 6).") as check:
        fn = check.signature(fn, "logratio", "clip_coef")
        rng = np.random.default_rng(114)
        cases = [
            ("log r = [0, log 2]: kl = (0 + 1 - log 2) / 2 = 0.1534, clipfrac 0.5", np.log([1.0, 2.0]), 0.2),
            ("r = [0.5, 1, 1, 1]: kl = (0.5 - 1 + log 2) / 4 = 0.0483, clipfrac 0.25", np.log([0.5, 1, 1, 1]), 0.2),
            ("r = [1.21, 0.81, 1.1, 0.9] with clip 0.2: only 1.21 is clipped", np.log([1.21, 0.81, 1.1, 0.9]), 0.2),
        ]
        for _ in range(6):
            B = int(rng.integers(4, 600))
            cases.append((f"random minibatch of {B}", rng.normal(0, 0.2, B), float(rng.choice([0.1, 0.2]))))
        for name, lr, eps in cases:
            what = f"approx_kl_and_clipfrac(logratio={_fmt(lr)}, clip_coef={eps:g})"
            out = check.call(fn, torch.tensor(lr, dtype=torch.float32), eps, budget_s=budget_s, what=what)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise LearnerCodeError(f"{what} returned {describe(out)}; expected a pair (approx_kl, clipfrac).")
            got = (_scalar(check, out[0], f"{what}[0] (approx_kl)"), _scalar(check, out[1], f"{what}[1] (clipfrac)"))
            want = reference_kl_clipfrac(torch.tensor(lr, dtype=torch.float32), eps)
            check.require(_close(got, want), name,
                          f"{what} returned (approx_kl={got[0]:.6g}, clipfrac={got[1]:.6g}); expected "
                          f"(approx_kl={want[0]:.6g}, clipfrac={want[1]:.6g})." + _which_mistake(got, _kl_mistakes(lr, eps), want))
        check.note("approx_kl and clipfrac match rlcore's logged diagnostics")


# =============================================================================================
# minibatch_indices(batch_size, num_minibatches, rng) -> list of num_minibatches index arrays
# =============================================================================================


def _index_arrays(check: Check, out, what: str, num_minibatches: int, size: int) -> list[np.ndarray]:
    try:
        parts = list(out)
    except TypeError:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected a list of {num_minibatches} index arrays.") from None
    if len(parts) != num_minibatches:
        raise LearnerCodeError(f"{what} returned {len(parts)} minibatches; expected num_minibatches = {num_minibatches}.")
    return [check.array(np.asarray(p), f"{what}[{i}]", shape=(size,), kind="int") for i, p in enumerate(parts)]


def minibatch_indices(fn, *, budget_s: float = 5.0) -> None:
    """Check `minibatch_indices(batch_size, num_minibatches, rng) -> [index array [batch_size // num_minibatches]]`."""
    with Check("ch11.minibatch_indices", "one epoch: the batch shuffled and split into minibatches",
               hint=f"order = rng.permutation(batch_size), then consecutive slices of batch_size // num_minibatches: "
                    f"every sample exactly once per epoch, a new order every epoch, from the rng you are given "
                    f"({LESSON}, section 5).") as check:
        fn = check.signature(fn, "batch_size", "num_minibatches", "rng")
        for batch_size, k in [(8, 1), (8, 2), (12, 4), (512, 1), (512, 4), (2048, 32)]:
            size = batch_size // k
            what = f"minibatch_indices({batch_size}, {k}, rng)"
            parts = _index_arrays(check, check.call(fn, batch_size, k, np.random.default_rng(7), budget_s=budget_s,
                                                    what=what), what, k, size)
            flat = np.concatenate(parts)
            check.require(np.array_equal(np.sort(flat), np.arange(batch_size)), f"{what}: every sample once",
                          f"the minibatches hold {len(np.unique(flat))} distinct indices out of {batch_size} "
                          f"({flat.size - len(np.unique(flat))} repeated); an epoch uses every sample exactly once "
                          "(a permutation, not draws with replacement).")
        what = "minibatch_indices(512, 4, rng)"
        first = np.concatenate(_index_arrays(check, check.call(fn, 512, 4, np.random.default_rng(8), budget_s=budget_s,
                                                               what=what), what, 4, 128))
        check.require(not np.array_equal(first, np.arange(512)), "the batch is shuffled",
                      "the indices come in order 0, 1, 2, ...: minibatches of consecutive steps are strongly correlated. "
                      "Shuffle with rng.permutation(batch_size).")
        again = np.concatenate(_index_arrays(check, check.call(fn, 512, 4, np.random.default_rng(8), budget_s=budget_s,
                                                               what=what), what, 4, 128))
        check.require(np.array_equal(first, again), "the same rng seed gives the same order",
                      "two calls with np.random.default_rng(8) gave different orders: draw from the rng argument, not "
                      "from np.random or torch's global generator.")
        rng = np.random.default_rng(9)
        epochs = [np.concatenate(_index_arrays(check, check.call(fn, 512, 4, rng, budget_s=budget_s, what=what), what, 4, 128))
                  for _ in range(3)]
        check.require(not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2]),
                      "a new order every epoch",
                      "successive calls with the same rng returned the same order: every epoch must reshuffle (do not "
                      "create a new generator with a fixed seed inside the function).")
        # Every sample is equally likely to land in each minibatch: where sample 0 goes over 400 epochs.
        rng = np.random.default_rng(10)
        counts = np.zeros(4)
        for _ in range(400):
            parts = _index_arrays(check, check.call(fn, 64, 4, rng, budget_s=budget_s, what="minibatch_indices(64, 4, rng)"),
                                  "minibatch_indices(64, 4, rng)", 4, 16)
            counts[[0 in p for p in parts].index(True)] += 1
        p_value = float(stats._scipy_stats.chisquare(counts).pvalue)
        check.require(p_value > 1e-4, "each minibatch equally likely for every sample",
                      f"over 400 epochs sample 0 landed in minibatches 0-3 {counts.astype(int).tolist()} times (chi-square "
                      f"p = {p_value:.1e}); a uniform shuffle puts it in each about 100 times.")
        check.note("each epoch is a fresh uniform permutation drawn from the given rng")


# =============================================================================================
# The training loop: learning curves on CartPole-v1 and Acrobot-v1
# =============================================================================================

CARTPOLE_PUBLISHED = (490.04, 6.12)  # CleanRL ppo.py, 500k steps, 3 seeds, population SD
ACROBOT_PUBLISHED = (-86.36, 1.32)
CARTPOLE_RANDOM = 22.7
ACROBOT_RANDOM = -499.2


def _delta(published: tuple[float, float], random_mean: float) -> float:
    return stats.noninferiority_delta(published[0], stats.population_to_sample_sd(published[1], 3), random_mean)


def _task(key: str) -> deeprl.CurveTask:
    ref = load_reference()[key]
    if key == "cartpole":
        published, random_mean, env_id, steps, best = CARTPOLE_PUBLISHED, CARTPOLE_RANDOM, "CartPole-v1", CARTPOLE_STEPS, 500.0
    else:
        published, random_mean, env_id, steps, best = ACROBOT_PUBLISHED, ACROBOT_RANDOM, "Acrobot-v1", ACROBOT_STEPS, 0.0
    return deeprl.CurveTask(
        check_id=f"ch11.train_ppo_{key}", title=f"your PPO loop learns {env_id} in {steps:,} steps",
        env_id=env_id, num_envs=NUM_ENVS, total_timesteps=steps, seeds=VISIBLE_SEEDS,
        published_mean=published[0], delta=_delta(published, random_mean),
        published_label=f"CleanRL PPO {published[0]:g} at 500k steps", best_return=best, random_return=random_mean,
        reference=ref, lesson=LESSON, sections=SECTIONS,
        hint=(f"Run the pieces above on a rollout of {NUM_ENVS} x {SETTINGS['num_steps']} steps: GAE advantages "
              "that bootstrap from V(final_obs) on truncation, then update_epochs passes of minibatches with "
              "normalized advantages. Log losses/entropy, losses/approx_kl, losses/clipfrac and "
              f"losses/explained_variance so a failure can be diagnosed ({LESSON}, section 7)."))


def train_ppo_cartpole(fn) -> None:
    """Grade `train_ppo(envs, seed, total_timesteps, log)` on CartPole-v1 (7 seeds, 150k steps each)."""
    deeprl.curve_check(_task("cartpole"), fn, n_actions=2)


def train_ppo_acrobot(fn) -> None:
    """Grade `train_ppo(envs, seed, total_timesteps, log)` on Acrobot-v1 (7 seeds, 100k steps each)."""
    deeprl.curve_check(_task("acrobot"), fn, n_actions=3)
