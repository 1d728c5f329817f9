"""Checks for chapter 07, deep learning for RL: the pieces of a value learner and its loop.

- `value_net`: the network builder. Layer sizes, Tanh between layers and none after the output,
  orthogonal weights with gain sqrt(2) on hidden layers and 1 on the output, zero biases
  (the initialisation of `rlcore.nets.mlp`).
- `regression_step`: one step of mean-squared-error regression to value targets, checked against
  the same step done here, exactly to float tolerance: a hand case with SGD, random batches with
  Adam, two steps in a row (gradients must be zeroed; the optimizer's state must be the caller's),
  and targets that still carry a gradient (they must be treated as constants).
- `overfit_one_batch`: the second rung of the ladder. The first losses must follow the same Adam
  run done here, and the last must fall below a bound set by that run.
- `td0_targets`: one-step targets on rlcore's SAME-STEP autoreset protocol, against
  `rlcore.returns.lambda_returns` with lam = 0 on hand and random [T, N] cases; when a hand case
  fails, the message names the mistake the answer matches.
- `train_value`: the learner's whole TD(0) loop, `train_value(envs, seed, total_timesteps, log)`,
  run on four probe environments (rlcore/envs/probes.py) in grader-owned vector envs; the learned
  values must match the probes' analytic values. The probes run in ladder order, so the first one
  that fails names the bug.

Reference data: autograder/references/ch07_deep_learning_for_rl.json (gen_ch07.py): the spread of
correct runs over 20 seeds and variants, the values the known bugs converge to, and the overfit runs.
rlcore has no plain TD(0) value learner; `reference_train_value` below is the loop the references run.
"""

from __future__ import annotations

import copy
import json
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autograder.deeprl import GradedVectorEnv, MetricLog, single_threaded
from autograder.protocol import Check, LearnerCodeError, describe, grading_seeds
from rlcore import returns as ref_returns
from rlcore.envs import make_env
from rlcore.nets import mlp

LESSON = "lesson 07 (course/07_deep_learning_for_rl.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch07_deep_learning_for_rl.json"

# The lesson's section titles that the hints and diagnoses point to.
SECTIONS = {
    "torch": "1. Torch for RL: tensors, dtypes, devices, autograd",
    "nets": "3. Networks for RL: an MLP with orthogonal initialisation",
    "regression": "4. Regression to value targets",
    "ladder": "5. Start simple: the ladder",
    "targets": "6. One-step targets, terminated and truncated",
    "detach": "7. Why targets are detached: the moving target",
    "debug": "9. When the value is wrong: debugging",
}


def _see(key: str) -> str:
    return f"{LESSON}, section '{SECTIONS[key]}'"


# The settings the exercise states (its setup cell repeats them).
GAMMA = 0.9
HIDDEN = (64, 64)
LR = 3e-3
NUM_ENVS = 8
TOTAL_TIMESTEPS = 2000  # 250 updates of 8 transitions per probe
VISIBLE_SEEDS = (0, 1, 2)
ATOL = 1e-6  # parameters after one step, float32
RTOL = 1e-5

# Overfitting one batch: 64 random observations (4 features) with random targets, Adam.
OVERFIT_BATCH, OVERFIT_OBS_DIM, OVERFIT_STEPS, OVERFIT_LR = 64, 4, 300, 1e-2
OVERFIT_MATCH_STEPS = 10  # the first losses must follow the grader's own Adam run
OVERFIT_FACTOR = 10.0  # the last loss must be below this many times the grader's last loss

# The probes the loop is graded on, in ladder order: (env id, what it tests, observations to read V at).
PROBES = [
    ("rlcore/Probe1-ConstantReward-v0", "constant reward: V = 1", [[0.0]]),
    ("rlcore/Probe2-ObsDependentReward-v0", "reward = observation: V(+1) = +1, V(-1) = -1", [[1.0], [-1.0]]),
    ("rlcore/Probe3-Discounting-v0", f"two steps: V(0) = gamma = {GAMMA:g}, V(1) = 1", [[0.0], [1.0]]),
    ("rlcore/Probe6-TimeLimit-v0", f"time limit: V = 1 / (1 - gamma) = {1 / (1 - GAMMA):g}", [[0.0]]),
]
# A learned value passes when it is within this fraction of max(1, |V|) of the analytic value. Correct
# runs land within 3e-4 of it, variants with another learning rate or PyTorch's default init within 6e-3
# (the reference JSON: 20 seeds per probe, 5 per variant, worst case stored). The smallest error a known
# bug leaves is 3.3 on Probe 6 (truncation treated as termination: 6.7 instead of 10), 6.6 times the
# tolerance there; bootstrapping through the terminal step leaves errors near 9.
PROBE_TOLERANCE = 0.05


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our reference runs (autograder/references/ch07_deep_learning_for_rl.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def analytic_values(env_id: str, points, gamma: float = GAMMA) -> np.ndarray:
    """The probe's own analytic V at each observation in `points` [K, obs_dim] -> [K]."""
    env = make_env(env_id).unwrapped
    return np.array([env.value(np.asarray(p, dtype=np.float32), gamma) for p in points], dtype=np.float64)


# =============================================================================================
# Reference pieces (what each graded piece must compute)
# =============================================================================================


def reference_regression_step(net: nn.Module, optimizer: torch.optim.Optimizer, obs: torch.Tensor,
                              targets: torch.Tensor) -> float:
    """One MSE step: loss = mean((V(obs) - targets)^2) with targets as constants; returns the loss."""
    values = net(obs).squeeze(-1)  # [B, 1] -> [B]
    loss = (values - targets.detach()).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_overfit(net: nn.Module, obs: torch.Tensor, targets: torch.Tensor, steps: int, lr: float) -> np.ndarray:
    """Adam(lr) on one batch for `steps` steps; the loss before each step [steps]."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    return np.array([reference_regression_step(net, optimizer, obs, targets) for _ in range(steps)])


def reference_td0_targets(rewards, next_values, terminated, truncated, final_values, gamma: float) -> np.ndarray:
    """r + gamma * (1 - terminated) * V(s'), s' = final_obs where the episode ended, via rlcore.returns."""
    r = np.asarray(rewards, dtype=np.float64)
    done = np.asarray(terminated) | np.asarray(truncated)
    bootstrap = np.where(done, np.asarray(final_values, dtype=np.float64), np.asarray(next_values, dtype=np.float64))
    shape = r.shape
    as_2d = (lambda a: a.reshape(1, -1)) if r.ndim == 1 else (lambda a: a)
    out = ref_returns.lambda_returns(as_2d(r), np.zeros_like(as_2d(r)), as_2d(bootstrap), as_2d(np.asarray(terminated)),
                                     as_2d(np.asarray(truncated)), gamma, 0.0)
    return out.reshape(shape)


def reference_train_value(envs, seed: int, total_timesteps: int, log, *, lr: float = LR, hidden=HIDDEN,
                          gamma: float = GAMMA, init: str = "orthogonal", truncation_is_termination: bool = False,
                          bootstrap_terminal: bool = False) -> nn.Module:
    """TD(0) value learning with one regression step per vector step (the exercise's loop).

    The keyword arguments after `log` make the variants the references measure: another learning rate,
    PyTorch's default initialisation, and the two bugs the probes must expose."""
    torch.manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    obs = torch.as_tensor(obs, dtype=torch.float32)
    net = mlp(obs.shape[1], hidden, 1)
    if init == "default":
        for m in net:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    actions = np.zeros(envs.num_envs, dtype=np.int64)  # every graded probe has one action
    global_step = 0
    while global_step + envs.num_envs <= total_timesteps:
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        global_step += envs.num_envs
        next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
        term, trunc = torch.as_tensor(terminated), torch.as_tensor(truncated)
        with torch.no_grad():
            next_values = net(next_obs).squeeze(-1)
            final_values = net(torch.as_tensor(info["final_obs"], dtype=torch.float32)).squeeze(-1)
        done = term | trunc
        stop = done if truncation_is_termination else term
        if bootstrap_terminal:
            stop = torch.zeros_like(term)
        bootstrap = torch.where(done, final_values, next_values)
        targets = torch.as_tensor(rewards, dtype=torch.float32) + gamma * (~stop).float() * bootstrap
        loss = reference_regression_step(net, optimizer, obs, targets)
        if global_step % (20 * envs.num_envs) == 0:
            log(global_step, {"losses/value_loss": loss})
        obs = next_obs
    return net


def _fmt(values, digits: int = 4) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


def _seeded_mlp(seed: int, obs_dim: int, hidden=HIDDEN) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp(obs_dim, hidden, 1)


def _max_param_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def _as_number(check: Check, value, what: str) -> float:
    """A loss the learner returned: a Python float, or a one-element tensor or array."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise LearnerCodeError(f"{what} returned a tensor of shape {tuple(value.shape)}; expected the loss, "
                                   "one number (return loss.item()).")
        value = value.detach().item()
    number = float(check.array(value, what, shape=np.shape(value)).reshape(-1)[0]) if np.size(value) == 1 else None
    if number is None:
        raise LearnerCodeError(f"{what} returned {describe(value)}; expected the loss, one number.")
    return number


def _as_array(check: Check, value, what: str, shape: tuple) -> np.ndarray:
    """A tensor or array the learner returned, as float64 numpy, validated for shape and finiteness."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return check.array(value, what, shape=shape).astype(np.float64)


# =============================================================================================
# 1. The network
# =============================================================================================


def _orthogonal_gain(weight: torch.Tensor) -> tuple[bool, float]:
    """Whether the rows (or columns, whichever are fewer) of `weight` are orthogonal with one common
    norm, and that norm (the gain)."""
    w = weight.detach().double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    gain = float(gram.diagonal().mean().sqrt())
    ok = bool(torch.allclose(gram, gain ** 2 * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-4 * max(gain ** 2, 1)))
    return ok, gain


def value_net(fn, *, budget_s: float = 10.0) -> None:
    """Check `value_net(obs_dim, hidden_sizes) -> nn.Module` mapping [B, obs_dim] to [B, 1]."""
    with Check("ch07.value_net", "value network: Linear/Tanh layers with orthogonal initialisation",
               hint="nn.Sequential(Linear(obs_dim, h0), Tanh(), ..., Linear(h_last, 1)); initialise each Linear with "
                    "nn.init.orthogonal_(weight, gain) (gain sqrt(2) for hidden layers, 1 for the output) and zero "
                    f"biases, like rlcore.nets.layer_init ({_see('nets')}).") as check, single_threaded():
        fn = check.signature(fn, "obs_dim", "hidden_sizes")
        for obs_dim, hidden in [(4, (8,)), (4, (64, 64)), (1, (16,)), (3, (32, 16, 8)), (6, (128, 64))]:
            what = f"value_net({obs_dim}, {hidden})"
            net = check.call(fn, obs_dim, hidden, budget_s=budget_s, what=what)
            check.require(isinstance(net, nn.Module), f"{what} is a torch module",
                          f"{what} returned {describe(net)}; return an nn.Module (an nn.Sequential).")
            x = torch.randn(5, obs_dim, generator=torch.Generator().manual_seed(obs_dim))
            with torch.no_grad():
                out = check.call(net, x, budget_s=budget_s, what=f"{what}(obs of shape [5, {obs_dim}])")
            check.require(isinstance(out, torch.Tensor) and tuple(out.shape) == (5, 1), f"{what}: output shape",
                          f"on a batch [5, {obs_dim}] the network returned "
                          f"{tuple(out.shape) if isinstance(out, torch.Tensor) else describe(out)}; expected [5, 1] "
                          "(one value per observation).")
            leaves = [m for m in net.modules() if len(list(m.children())) == 0 and not isinstance(m, nn.Identity)]
            kinds = ["Linear" if isinstance(m, nn.Linear) else type(m).__name__ for m in leaves]
            want_kinds = ["Linear", "Tanh"] * len(hidden) + ["Linear"]
            check.require(kinds == want_kinds, f"{what}: layers",
                          f"the network's layers are {kinds}; expected {want_kinds}: Tanh between layers and no "
                          "activation after the output (a value can be any number, so the output stays linear).")
            linears = [m for m in leaves if isinstance(m, nn.Linear)]
            sizes = [obs_dim, *hidden, 1]
            got_sizes = [(m.in_features, m.out_features) for m in linears]
            want_sizes = list(zip(sizes[:-1], sizes[1:]))
            check.require(got_sizes == want_sizes, f"{what}: layer sizes",
                          f"the Linear layers are (in, out) = {got_sizes}; expected {want_sizes}.")
            for k, layer in enumerate(linears):
                last = k == len(linears) - 1
                want_gain = 1.0 if last else math.sqrt(2)
                name = "the output layer" if last else f"hidden layer {k}"
                ok, gain = _orthogonal_gain(layer.weight)
                check.require(ok, f"{what}: {name} is orthogonal",
                              f"the weights of {name} are not orthogonal (W W^T should be gain^2 * I). "
                              "PyTorch's default init is uniform, not orthogonal: call nn.init.orthogonal_.")
                check.require(abs(gain - want_gain) < 1e-3, f"{what}: gain of {name}",
                              f"{name} has orthogonal weights with gain {gain:.4g}; expected {want_gain:.4g} "
                              f"({'1 for the value output' if last else 'sqrt(2) for Tanh hidden layers'}).")
                check.require(layer.bias is not None and float(layer.bias.detach().abs().max()) == 0.0,
                              f"{what}: bias of {name}", f"{name} has a nonzero bias; initialise biases to 0.")
        a = check.call(fn, 4, (64, 64), budget_s=budget_s, what="value_net(4, (64, 64))")
        b = check.call(fn, 4, (64, 64), budget_s=budget_s, what="value_net(4, (64, 64))")
        same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        check.require(not same, "two calls give two different networks",
                      "two calls returned identical weights: value_net must not seed torch itself (the caller "
                      "seeds once, at the start of a run).")
        torch.manual_seed(123)
        ours = mlp(4, (64, 64), 1)
        torch.manual_seed(123)
        theirs = check.call(fn, 4, (64, 64), budget_s=budget_s, what="value_net(4, (64, 64))")
        if all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters())):
            check.note("with the same torch seed your network is identical to rlcore.nets.mlp(4, (64, 64), 1).")


# =============================================================================================
# 2. One regression step
# =============================================================================================


def _regression_mistakes(net, obs, targets, lr) -> dict[str, tuple[float, np.ndarray]]:
    """(loss, parameters after one SGD step) of common mistakes on the hand case."""
    out = {}

    def run(loss_fn, after=False):
        n = copy.deepcopy(net)
        opt = torch.optim.SGD(n.parameters(), lr=lr)
        loss = loss_fn(n)
        opt.zero_grad()
        loss.backward()
        opt.step()
        reported = loss_fn(n).item() if after else loss.item()
        return reported, torch.cat([p.detach().reshape(-1) for p in n.parameters()]).numpy()

    out["the [B, 1] output compared with [B] targets: broadcasting makes a [B, B] matrix (squeeze(-1) the output)"] = \
        run(lambda n: (n(obs) - targets).square().mean())
    out["the sum of squared errors instead of their mean"] = run(lambda n: (n(obs).squeeze(-1) - targets).square().sum())
    out["half the mean squared error (the graded loss is mean((V - target)^2), no 1/2)"] = \
        run(lambda n: 0.5 * (n(obs).squeeze(-1) - targets).square().mean())
    out["the loss after the step instead of before it"] = \
        run(lambda n: (n(obs).squeeze(-1) - targets).square().mean(), after=True)
    return out


def regression_step(fn, *, budget_s: float = 10.0) -> None:
    """Check `regression_step(net, optimizer, obs, targets) -> float`."""
    with Check("ch07.regression_step", "one step of mean-squared-error regression to value targets",
               hint="values = net(obs).squeeze(-1); loss = ((values - targets.detach()) ** 2).mean(); then "
                    "optimizer.zero_grad(), loss.backward(), optimizer.step(), in that order; return loss.item() "
                    f"({_see('regression')}).") as check, single_threaded():
        fn = check.signature(fn, "net", "optimizer", "obs", "targets")

        def params(n):
            return torch.cat([p.detach().reshape(-1) for p in n.parameters()]).numpy()

        # 1. Hand case: V(x) = 2x, obs [1, 2], targets [1, 3]: errors [1, 1], loss 1, gradients w: 3, b: 2.
        lin = nn.Linear(1, 1)
        with torch.no_grad():
            lin.weight.fill_(2.0)
            lin.bias.fill_(0.0)
        hand = nn.Sequential(lin)
        obs = torch.tensor([[1.0], [2.0]])
        targets = torch.tensor([1.0, 3.0])
        net = copy.deepcopy(hand)
        what = "regression_step(V(x) = 2x, SGD(lr=0.1), obs [[1], [2]], targets [1, 3])"
        loss = _as_number(check, check.call(fn, net, torch.optim.SGD(net.parameters(), lr=0.1), obs.clone(),
                                            targets.clone(), budget_s=budget_s, what=what), what)
        got = params(net)
        want = np.array([1.7, -0.2])
        ok = abs(loss - 1.0) < 1e-6 and np.allclose(got, want, atol=1e-6)
        named = [name for name, (l_bug, p_bug) in _regression_mistakes(hand, obs, targets, 0.1).items()
                 if abs(loss - l_bug) < 1e-5 and np.allclose(got, p_bug, atol=1e-5)]
        check.require(ok, "hand case: V(x) = 2x, one SGD step",
                      f"{what} returned loss {loss:.6g} and left (w, b) = {_fmt(got, 6)}; expected loss "
                      "mean((2 - 1)^2, (4 - 3)^2) = 1 and, with gradients dL/dw = 3 and dL/db = 2, (w, b) = "
                      "(2 - 0.1 * 3, 0 - 0.1 * 2) = (1.7, -0.2)." + (f" Your answer matches {' or '.join(named)}."
                                                                  if named else ""))

        # 2. Random batches, Adam, against the same step done here.
        for seed, (obs_dim, batch) in enumerate([(1, 8), (4, 64), (8, 256)]):
            g = torch.Generator().manual_seed(100 + seed)
            obs = torch.randn(batch, obs_dim, generator=g)
            targets = 3 * torch.randn(batch, generator=g)
            ours, theirs = _seeded_mlp(seed, obs_dim), _seeded_mlp(seed, obs_dim)
            want_loss = reference_regression_step(ours, torch.optim.Adam(ours.parameters(), lr=1e-3), obs, targets)
            what = f"regression_step(net, Adam(lr=1e-3), obs [{batch}, {obs_dim}], targets [{batch}])"
            loss = _as_number(check, check.call(fn, theirs, torch.optim.Adam(theirs.parameters(), lr=1e-3), obs.clone(),
                                                targets.clone(), budget_s=budget_s, what=what), what)
            check.require(math.isclose(loss, want_loss, rel_tol=RTOL, abs_tol=1e-7), f"random batch of {batch}: loss",
                          f"{what} returned loss {loss:.6g}; expected {want_loss:.6g}, the mean squared error "
                          "before the step.")
            diff = _max_param_diff(ours, theirs)
            check.require(diff < ATOL, f"random batch of {batch}: parameters after the step",
                          f"after {what} the parameters differ from the expected step by up to {diff:.3g}. Check "
                          "the loss (mean of squared errors over the batch) and the order zero_grad, backward, step.")

        # 3. Two steps in a row with the same optimizer: gradients zeroed, the optimizer's state kept.
        for opt_name, make in [("SGD(lr=0.01)", lambda p: torch.optim.SGD(p, lr=0.01)),
                               ("Adam(lr=1e-3)", lambda p: torch.optim.Adam(p, lr=1e-3))]:
            g = torch.Generator().manual_seed(7)
            obs = torch.randn(32, 4, generator=g)
            targets = torch.randn(32, generator=g)
            ours, theirs = _seeded_mlp(5, 4), _seeded_mlp(5, 4)
            our_opt, their_opt = make(ours.parameters()), make(theirs.parameters())
            for k in range(3):
                want_loss = reference_regression_step(ours, our_opt, obs, targets)
                what = f"regression_step call {k + 1} of 3 with the same {opt_name}"
                loss = _as_number(check, check.call(fn, theirs, their_opt, obs.clone(), targets.clone(),
                                                    budget_s=budget_s, what=what), what)
            diff = _max_param_diff(ours, theirs)
            check.require(diff < ATOL and math.isclose(loss, want_loss, rel_tol=RTOL, abs_tol=1e-7),
                          f"three steps in a row with {opt_name}",
                          f"after three calls with the same {opt_name} the parameters differ from three correct "
                          f"steps by up to {diff:.3g} (the third loss: {loss:.6g}, expected {want_loss:.6g}). "
                          "Call optimizer.zero_grad() before loss.backward() (gradients add up otherwise), and use "
                          "the optimizer you are given (a new one each call forgets Adam's moment estimates).")

        # 4. Targets that carry a gradient (built from the same network): they must act as constants.
        g = torch.Generator().manual_seed(11)
        obs, next_obs = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
        rewards = torch.randn(16, generator=g)
        ours, theirs = _seeded_mlp(9, 4), _seeded_mlp(9, 4)
        reference_regression_step(ours, torch.optim.SGD(ours.parameters(), lr=0.1), obs,
                                  rewards + GAMMA * ours(next_obs).squeeze(-1))
        targets = rewards + GAMMA * theirs(next_obs).squeeze(-1)  # requires grad, through theirs
        what = "regression_step(net, SGD(lr=0.1), obs, targets = r + 0.9 * net(next_obs))"
        check.call(fn, theirs, torch.optim.SGD(theirs.parameters(), lr=0.1), obs, targets, budget_s=budget_s, what=what)
        diff = _max_param_diff(ours, theirs)
        check.require(diff < ATOL, "targets that carry a gradient are treated as constants",
                      f"with targets = r + 0.9 * net(next_obs) (which carry a gradient into net) the step differs "
                      f"from the semi-gradient step by up to {diff:.3g}: the gradient flowed into the targets. Use "
                      f"targets.detach() in the loss ({_see('detach')}).")


# =============================================================================================
# 3. Overfitting one batch
# =============================================================================================


def _overfit_case(seed: int, batch: int = OVERFIT_BATCH, obs_dim: int = OVERFIT_OBS_DIM):
    g = torch.Generator().manual_seed(1000 + seed)
    obs = torch.randn(batch, obs_dim, generator=g)
    targets = torch.randn(batch, generator=g)
    return obs, targets


def overfit_one_batch(fn, *, budget_s: float = 30.0) -> None:
    """Check `overfit_one_batch(net, obs, targets, steps, lr) -> losses [steps]`."""
    with Check("ch07.overfit_one_batch", "overfit one batch with Adam: the loss must go to (almost) zero",
               hint="Build torch.optim.Adam(net.parameters(), lr=lr) once, then call regression_step(net, optimizer, "
                    "obs, targets) `steps` times on the same batch and return the list of losses "
                    f"({_see('ladder')}).") as check, single_threaded():
        fn = check.signature(fn, "net", "obs", "targets", "steps", "lr")
        # 1. A short run must follow the grader's own Adam run step by step.
        obs, targets = _overfit_case(0, batch=16)
        ours, theirs = _seeded_mlp(3, OVERFIT_OBS_DIM), _seeded_mlp(3, OVERFIT_OBS_DIM)
        want = reference_overfit(ours, obs, targets, OVERFIT_MATCH_STEPS, OVERFIT_LR)
        what = f"overfit_one_batch(net, obs [16, 4], targets [16], steps={OVERFIT_MATCH_STEPS}, lr={OVERFIT_LR:g})"
        got = _as_array(check, check.call(fn, theirs, obs.clone(), targets.clone(), OVERFIT_MATCH_STEPS, OVERFIT_LR,
                                          budget_s=budget_s, what=what), what, (OVERFIT_MATCH_STEPS,))
        check.require(np.isclose(got[0], want[0], rtol=1e-5), "the first loss is the loss of the untrained network",
                      f"{what}: the first loss is {got[0]:.6g}; the untrained network's mean squared error on the "
                      f"batch is {want[0]:.6g}. Record each loss before its step, starting with the first.")
        k = int(np.argmax(~np.isclose(got, want, rtol=1e-3))) if not np.allclose(got, want, rtol=1e-3) else -1
        check.require(k < 0, f"the first {OVERFIT_MATCH_STEPS} losses follow Adam(lr={OVERFIT_LR:g})",
                      f"{what}: loss {k} is {got[k]:.6g} where Adam with lr={OVERFIT_LR:g} gives {want[k]:.6g} "
                      f"(yours {_fmt(got[:4])}..., expected {_fmt(want[:4])}...). Use Adam with the given lr, created "
                      "once before the loop, on net.parameters(), with the same obs and targets every step.")
        diff = _max_param_diff(ours, theirs)
        check.require(diff < 1e-4, "the network passed in is the one trained",
                      f"after {what} the network's parameters differ from the trained ones by up to {diff:.3g}: train "
                      "`net` itself, not a copy.")
        # 2. The full run: the loss must fall to a tiny fraction of where it started.
        obs, targets = _overfit_case(1)
        ours, theirs = _seeded_mlp(4, OVERFIT_OBS_DIM), _seeded_mlp(4, OVERFIT_OBS_DIM)
        want = reference_overfit(ours, obs, targets, OVERFIT_STEPS, OVERFIT_LR)
        what = (f"overfit_one_batch(net, obs [{OVERFIT_BATCH}, {OVERFIT_OBS_DIM}], targets [{OVERFIT_BATCH}], "
                f"steps={OVERFIT_STEPS}, lr={OVERFIT_LR:g})")
        got = _as_array(check, check.call(fn, theirs, obs.clone(), targets.clone(), OVERFIT_STEPS, OVERFIT_LR,
                                          budget_s=budget_s, what=what), what, (OVERFIT_STEPS,))
        bound = OVERFIT_FACTOR * want[-1]
        check.require(got[-1] <= bound, f"the loss falls below {OVERFIT_FACTOR:g} x the reference's last loss",
                      f"{what}: the last loss is {got[-1]:.3g} (first {got[0]:.3g}); the same run here ends at "
                      f"{want[-1]:.3g}, and the bound is {bound:.3g}. A network this size must memorise 64 points: "
                      "if it cannot, the optimizer, the loss or the data pairing is broken.")
        check.note(f"loss {got[0]:.3g} -> {got[-1]:.2e} in {OVERFIT_STEPS} steps (the grader's run: {want[-1]:.2e}).")
        check.plot(_overfit_figure(got, want), "losses")


def _overfit_figure(got: np.ndarray, want: np.ndarray):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.semilogy(want, color="0.4", lw=2, label="grader's Adam run")
    ax.semilogy(got, color="tab:green" if got[-1] <= OVERFIT_FACTOR * want[-1] else "tab:red", lw=1.2, label="your code")
    ax.axhline(OVERFIT_FACTOR * want[-1], color="tab:purple", ls=":", label=f"bound ({OVERFIT_FACTOR:g} x grader's last)")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE on the batch")
    ax.set_title("Overfitting one batch", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# =============================================================================================
# 4. One-step targets
# =============================================================================================


def _td0_mistakes(r, nv, term, trunc, fv, gamma) -> dict[str, np.ndarray]:
    done = term | trunc
    boot = np.where(done, fv, nv)
    return {
        "bootstrapping through terminated steps (a terminal state's value is 0)": r + gamma * boot,
        "truncation treated as termination (a time limit is not the end of the task: bootstrap from the final "
        "observation)": r + gamma * (~done) * boot,
        "next_values where the episode ended (with SAME-STEP autoreset they belong to the next episode's first "
        "observation; use final_values)": r + gamma * (~term) * nv,
        "the reward discounted too (the reward is not discounted, only the bootstrap)": gamma * (r + (~term) * boot),
        "terminated and truncated swapped": r + gamma * (~trunc) * boot,
    }


def td0_targets(fn, *, budget_s: float = 5.0) -> None:
    """Check `td0_targets(rewards, next_values, terminated, truncated, final_values, gamma) -> targets`."""
    with Check("ch07.td0_targets", "one-step TD targets with terminated vs truncated on SAME-STEP autoreset",
               hint="bootstrap = torch.where(terminated | truncated, final_values, next_values); targets = rewards + "
                    "gamma * (~terminated) * bootstrap, computed without a gradient (torch.no_grad() or .detach()) "
                    f"({_see('targets')}).") as check, single_threaded():
        fn = check.signature(fn, "rewards", "next_values", "terminated", "truncated", "final_values", "gamma")

        def run(r, nv, term, trunc, fv, gamma, what, grad=False):
            args = [torch.tensor(r, dtype=torch.float32), torch.tensor(nv, dtype=torch.float32, requires_grad=grad),
                    torch.tensor(term), torch.tensor(trunc), torch.tensor(fv, dtype=torch.float32, requires_grad=grad)]
            out = check.call(fn, *args, gamma, budget_s=budget_s, what=what)
            check.require(isinstance(out, torch.Tensor), f"{what} returns a tensor",
                          f"{what} returned {describe(out)}; return a torch tensor of the rewards' shape.")
            return out, _as_array(check, out, what, tuple(np.shape(r)))

        # 1. Hand case: four envs, one step each. Env 0 goes on, env 1 terminates, env 2 is truncated, env 3
        # goes on; V(next obs) = 5 everywhere, V(final obs) = 7 where an episode ended.
        r, nv, fv = np.ones(4), np.full(4, 5.0), np.array([5.0, 7.0, 7.0, 5.0])
        term, trunc = np.array([False, True, False, False]), np.array([False, False, True, False])
        what = ("td0_targets(rewards [1, 1, 1, 1], next_values [5, 5, 5, 5], terminated [F, T, F, F], "
                "truncated [F, F, T, F], final_values [5, 7, 7, 5], gamma=0.5)")
        _, got = run(r, nv, term, trunc, fv, 0.5, what)
        want = reference_td0_targets(r, nv, term, trunc, fv, 0.5)
        named = [n for n, v in _td0_mistakes(r, nv, term, trunc, fv, 0.5).items()
                 if np.allclose(got, v, atol=1e-5) and not np.allclose(v, want)]
        check.require(np.allclose(got, want, atol=1e-5), "hand case: going on, terminated, truncated",
                      f"{what} returned {_fmt(got)}; expected {_fmt(want)}: 1 + 0.5 * 5 where the episode goes on, "
                      "1 where it terminated, 1 + 0.5 * 7 (the final observation's value) where it was truncated."
                      + (f" Your answer matches {' or '.join(named)}." if named else ""))
        # 2. gamma = 0 keeps only the reward; gamma = 1 with nothing ended adds the next value.
        for gamma, why in [(0.0, "gamma = 0: the targets are the rewards"), (1.0, "gamma = 1, no episode ended")]:
            r, nv = np.array([0.5, -2.0, 3.0]), np.array([1.0, 2.0, -4.0])
            no = np.zeros(3, dtype=bool)
            what = f"td0_targets(rewards {_fmt(r)}, next_values {_fmt(nv)}, nothing ended, gamma={gamma:g})"
            _, got = run(r, nv, no, no, nv, gamma, what)
            want = reference_td0_targets(r, nv, no, no, nv, gamma)
            check.require(np.allclose(got, want, atol=1e-5), why, f"{what} returned {_fmt(got)}; expected {_fmt(want)}.")
        # 3. Random rollouts [T, N] against rlcore.returns.lambda_returns(lam=0).
        rng = np.random.default_rng(0)
        for T, N in [(1, 5), (16, 8), (128, 32)]:
            r = rng.normal(size=(T, N))
            nv, fv = rng.normal(size=(T, N)) * 10, rng.normal(size=(T, N)) * 10
            term, trunc = rng.random((T, N)) < 0.1, rng.random((T, N)) < 0.1
            trunc &= ~term
            fv = np.where(term | trunc, fv, nv)  # rows where nothing ended hold a copy (the protocol)
            gamma = float(rng.uniform(0.5, 1.0))
            what = f"td0_targets on a random [{T}, {N}] rollout (gamma={gamma:.3f})"
            _, got = run(r, nv, term, trunc, fv, gamma, what)
            want = reference_td0_targets(r, nv, term, trunc, fv, gamma)
            bad = ~np.isclose(got, want, atol=1e-4, rtol=1e-5)
            if bad.any():
                t, i = map(int, np.argwhere(bad)[0])
                kind = "terminated" if term[t, i] else "truncated" if trunc[t, i] else "nothing ended"
                check.require(False, f"random rollout [{T}, {N}]",
                              f"{what}: entry [{t}, {i}] ({kind}) is {got[t, i]:.5g}, expected {want[t, i]:.5g} "
                              f"(reward {r[t, i]:.4g}, next value {nv[t, i]:.4g}, final value {fv[t, i]:.4g}).")
            check.expect(True, f"random rollout [{T}, {N}]")
        # 4. Targets are constants: no gradient flows through them, and the inputs are left alone.
        r, nv, fv = np.array([1.0, 0.0]), np.array([2.0, 3.0]), np.array([2.0, 4.0])
        term, trunc = np.array([False, False]), np.array([False, True])
        what = "td0_targets(..., next_values and final_values with requires_grad=True, gamma=0.9)"
        out, _ = run(r, nv, term, trunc, fv, 0.9, what, grad=True)
        check.require(not out.requires_grad, "the targets carry no gradient",
                      f"{what} returned a tensor with requires_grad=True: targets built from the network's own "
                      "values must be constants. Compute them under torch.no_grad() or return them .detach()ed "
                      f"({_see('detach')}).")


# =============================================================================================
# 5. The training loop on the probes
# =============================================================================================


def _evaluate(check: Check, net, points, what: str) -> np.ndarray:
    obs = torch.tensor(points, dtype=torch.float32)
    if not callable(net):
        raise LearnerCodeError(f"{what} returned {describe(net)}; return the trained value network.")
    with torch.no_grad():
        out = check.call(net, obs, budget_s=5.0, what=f"the returned network on observations {points}")
    if not isinstance(out, torch.Tensor) or out.numel() != len(points):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else describe(out)
        raise LearnerCodeError(f"the network {what} returned maps {len(points)} observations to {shape}; "
                               f"expected [{len(points)}, 1] (one value each).")
    return _as_array(check, out.reshape(-1), "the returned network", (len(points),))


def _probe_diagnosis(env_id: str, got: np.ndarray, want: np.ndarray, initial: np.ndarray) -> str:
    """The likely cause of a wrong value on one probe, from the numbers (or '')."""
    g = GAMMA
    if np.allclose(got, initial, atol=0.05):
        return ("the values barely moved from the untrained network's: nothing was learned. Is regression_step "
                "called every step, on the network the function returns, with the optimizer built on its parameters?"
                f" See {_see('debug')}.")
    if "Probe1" in env_id and abs(got[0] - 1 / (1 - g)) < 1.0:
        return (f"V = {got[0]:.2f}, close to 1 / (1 - gamma) = {1 / (1 - g):g}: every step was bootstrapped, as if the "
                f"episode never ended. Multiply the bootstrap by (1 - terminated). See {_see('targets')}.")
    if "Probe1" in env_id and abs(got[0] - g) < 0.05:
        return f"V = {got[0]:.3f} = gamma: the reward itself was discounted. See {_see('targets')}."
    if "Probe2" in env_id and abs(got[0] - got[1]) < 0.5:
        return ("V(+1) and V(-1) are nearly equal: the network does not see which observation the reward belongs "
                "to. Train on the observation the step was taken from, and set obs = next_obs after each step."
                f" See {_see('debug')}.")
    if "Probe3" in env_id and got[1] > 1.5:
        return (f"V(1) = {got[1]:.3f}, more than the one reward that follows it: the target bootstraps through the "
                f"terminal step. Multiply the bootstrap by (1 - terminated). See {_see('targets')}.")
    if "Probe6" in env_id:
        bug = 1.0 / (1.0 - g * 19 / 20)
        if abs(got[0] - bug) < 0.5:
            return (f"V = {got[0]:.2f}, the fixed point of TD with truncation treated as termination ({bug:.2f}); "
                    f"the right value is {want[0]:g}. On truncation, bootstrap from the final observation. "
                    f"See {_see('targets')}.")
    return ""


def train_value(fn, *, budget_s: float = 60.0) -> None:
    """Check the learner's `train_value(envs, seed, total_timesteps, log) -> net` on the probes."""
    probe_runs(fn, budget_s=budget_s)


def probe_runs(fn, *, budget_s: float = 60.0) -> list[dict]:
    """The check `train_value`, returning one record per run (probe, seed, learned and analytic values)."""
    results: list[dict] = []
    check_id = "ch07.train_value"
    with Check(check_id, "TD(0) value learning on the probe environments",
               hint="Each step: act (one action: zeros), step the envs, compute the targets with td0_targets from "
                    "V(next_obs) and V(info['final_obs']) under torch.no_grad(), call regression_step on the "
                    "observations the step was taken from, then obs = next_obs. Stop when the next step would pass "
                    f"total_timesteps ({_see('ladder')}).") as check:
        fn = check.signature(fn, "envs", "seed", "total_timesteps", "log")
        seeds, hidden = grading_seeds(check_id, list(VISIBLE_SEEDS))
        started = time.monotonic()
        print(f"{check_id}: {len(PROBES)} probes x {len(seeds)} {'hidden ' if hidden else ''}seeds, "
              f"{TOTAL_TIMESTEPS:,} steps each, gamma = {GAMMA:g}")
        with single_threaded():
            for env_id, about, points in PROBES:
                want = analytic_values(env_id, points)
                tol = PROBE_TOLERANCE * max(1.0, float(np.abs(want).max()))
                short = env_id.split("/")[1].split("-")[0]
                for seed in seeds:
                    left = budget_s - (time.monotonic() - started)
                    envs = GradedVectorEnv(env_id, NUM_ENVS, seed=seed, total_timesteps=TOTAL_TIMESTEPS)
                    log = MetricLog()
                    what = f"train_value(envs={short} x {NUM_ENVS}, seed={seed}, total_timesteps={TOTAL_TIMESTEPS:,}, log)"
                    torch.manual_seed(seed)
                    initial = mlp(len(points[0]), HIDDEN, 1)
                    try:
                        net = check.call(fn, envs, seed, TOTAL_TIMESTEPS, log, budget_s=max(left, 1.0), what=what)
                    finally:
                        envs.close()
                    check.require(envs.global_step >= 0.9 * TOTAL_TIMESTEPS, f"{short} seed {seed}: steps used",
                                  f"{what} stopped after {envs.global_step:,} environment steps; use total_timesteps "
                                  f"= {TOTAL_TIMESTEPS:,} (at least 90%).")
                    got = _evaluate(check, net, points, what)
                    with torch.no_grad():
                        start = initial(torch.tensor(points, dtype=torch.float32)).reshape(-1).numpy()
                    err = float(np.abs(got - want).max())
                    results.append({"env_id": env_id, "seed": seed, "values": got.tolist(), "want": want.tolist(),
                                    "error": err, "tolerance": tol})
                    if err > tol:
                        cause = _probe_diagnosis(env_id, got, want, start)
                        if cause:
                            check.diagnosis.append(cause)
                        check.plot(_probe_figure(results), "values")
                    check.require(err <= tol, f"{short} ({about}), seed {seed}",
                                  f"after {what} the network gives V = {_fmt(got)} at observations {points}; the "
                                  f"analytic values are {_fmt(want)} (tolerance {tol:.2g}). The probes run in ladder "
                                  "order: the first that fails points at the bug.")
        worst = max(r["error"] / r["tolerance"] for r in results)
        check.note(f"largest error {worst:.1%} of the tolerance; {time.monotonic() - started:.1f} s for "
                   f"{len(results)} runs.")
        check.plot(_probe_figure(results), "values")
    return results


def _probe_figure(results: list[dict]):
    import matplotlib.pyplot as plt

    labels, want, got, ok = [], [], [], []
    for env_id, _, points in PROBES:
        rows = [r for r in results if r["env_id"] == env_id]
        if not rows:
            continue
        short = env_id.split("/")[1].split("-")[0]
        for j, p in enumerate(points):
            labels.append(f"{short}\nobs {p[0]:g}")
            want.append(rows[0]["want"][j])
            got.append([r["values"][j] for r in rows])
            ok.append(all(r["error"] <= r["tolerance"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(5.2, 1.0 * len(labels) + 1), 3.4))
    x = np.arange(len(labels))
    ax.bar(x, want, color="0.8", label="analytic V")
    for i, vals in enumerate(got):
        ax.scatter([x[i]] * len(vals), vals, color="tab:green" if ok[i] else "tab:red", zorder=3, s=18,
                   label="your network (one dot per seed)" if i == 0 else None)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("V")
    ax.set_title(f"Learned values on the probes (gamma = {GAMMA:g})", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
