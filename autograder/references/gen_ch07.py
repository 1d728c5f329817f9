"""Regenerate our reference runs for chapter 07 (autograder/references/ch07_deep_learning_for_rl.json).

    python -m autograder.references.gen_ch07          # about 1 minute of CPU

- Probes: the exercise's TD(0) loop (`autograder.checks.ch07.reference_train_value`, gamma 0.9, MLP
  64-64 Tanh, Adam 3e-3, 8 envs, 2000 steps) on the four graded probes over 20 seeds, plus variants a
  correct learner might write (Adam 1e-3, PyTorch's default init, Adam 1e-2; 5 seeds each): the largest
  error of each against the analytic values, which the check's tolerance must clear by far. And the
  values two known bugs converge to (truncation as termination on Probe 6, bootstrapping through the
  terminal step on Probe 3), which the tolerance must reject by far.
- Overfitting one batch: the graded case's final loss, and the spread of final losses over 20 network
  and batch seeds (how far a correct run's last loss can be from the graded run's).
- Sutton & Barto Example 11.2 (the A-split): semi-gradient TD vs the naive residual gradient (the target
  not detached), fitted to convergence; the book's values next to ours.

The probes' analytic values come from rlcore/envs/probes.py; there are no published numbers for a value
learner on them (the probes are Andy Jones' "Debugging RL, Without the Agonizing Pain").
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import rlcore
from autograder.checks import ch07
from autograder.deeprl import GradedVectorEnv, MetricLog

OUT = Path(__file__).parent / "ch07_deep_learning_for_rl.json"
SEEDS = list(range(1000, 1020))  # distinct from the check's visible seeds (0, 1, 2)
VARIANT_SEEDS = list(range(2000, 2005))
VARIANTS = {"adam_1e-3": {"lr": 1e-3}, "default_init": {"init": "default"}, "adam_1e-2": {"lr": 1e-2}}
BUGS = {
    "truncation_is_termination": ("rlcore/Probe6-TimeLimit-v0", {"truncation_is_termination": True}),
    "bootstrap_terminal": ("rlcore/Probe3-Discounting-v0", {"bootstrap_terminal": True}),
}
OVERFIT_SEEDS = list(range(20))


def probe_run(env_id: str, points, seed: int, **kwargs) -> tuple[np.ndarray, float]:
    envs = GradedVectorEnv(env_id, ch07.NUM_ENVS, seed=seed, total_timesteps=ch07.TOTAL_TIMESTEPS)
    t0 = time.process_time()
    net = ch07.reference_train_value(envs, seed, ch07.TOTAL_TIMESTEPS, MetricLog(), **kwargs)
    seconds = time.process_time() - t0
    envs.close()
    with torch.no_grad():
        values = net(torch.tensor(points, dtype=torch.float32)).reshape(-1).numpy().astype(np.float64)
    return values, seconds


def a_split(detach: bool, steps: int = 3000, lr: float = 0.05) -> list[float]:
    """Example 11.2 with a table of three values (A, B, C), gamma = 1, the expected TD loss over the
    four transitions of the two equally likely episodes A -> B -> end (+1) and A -> C -> end (0)."""
    v = torch.zeros(3, requires_grad=True)  # V(A), V(B), V(C)
    opt = torch.optim.Adam([v], lr=lr)
    for _ in range(steps):
        nxt = v.detach() if detach else v
        errors = torch.stack([nxt[1] - v[0], nxt[2] - v[0], 1 - v[1], 0 - v[2]])  # TD errors
        loss = (errors ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [round(float(x), 4) for x in v.detach()]


def main() -> None:
    start = time.perf_counter()
    torch.set_num_threads(1)
    probes = {}
    for env_id, about, points in ch07.PROBES:
        want = ch07.analytic_values(env_id, points)
        tol = ch07.PROBE_TOLERANCE * max(1.0, float(np.abs(want).max()))
        runs = [probe_run(env_id, points, s) for s in SEEDS]
        errors = np.array([np.abs(v - want).max() for v, _ in runs])
        variants = {}
        for name, kwargs in VARIANTS.items():
            var_errors = [float(np.abs(probe_run(env_id, points, s, **kwargs)[0] - want).max()) for s in VARIANT_SEEDS]
            variants[name] = {"kwargs": kwargs, "seeds": VARIANT_SEEDS, "max_error": float(f"{max(var_errors):.3g}")}
        probes[env_id] = {
            "what": about, "observations": points, "analytic": want.tolist(), "tolerance": tol,
            "correct": {"seeds": SEEDS, "max_error": float(f"{errors.max():.3g}"),
                        "mean_error": float(f"{errors.mean():.3g}"),
                        "seconds_per_run": round(float(np.mean([s for _, s in runs])), 3)},
            "variants": variants,
        }
        print(f"{env_id:<42} analytic {want}  max error {errors.max():.2e} (tolerance {tol:g}); variants "
              + ", ".join(f"{k} {v['max_error']:.2e}" for k, v in variants.items()))
    bugs = {}
    for name, (env_id, kwargs) in BUGS.items():
        points = next(p for e, _, p in ch07.PROBES if e == env_id)
        want = ch07.analytic_values(env_id, points)
        values = np.array([probe_run(env_id, points, s, **kwargs)[0] for s in VARIANT_SEEDS])
        gap = float(np.abs(values - want).max(axis=1).min())
        tol = probes[env_id]["tolerance"]
        bugs[name] = {"env_id": env_id, "kwargs": kwargs, "seeds": VARIANT_SEEDS, "analytic": want.tolist(),
                      "values_mean": [round(float(x), 4) for x in values.mean(0)],
                      "smallest_error": round(gap, 4), "error_over_tolerance": round(gap / tol, 1)}
        print(f"bug {name:<28} on {env_id}: values {values.mean(0).round(3)}, smallest error {gap:.3f} = {gap / tol:.1f} x tolerance")
    fixed_point = 1.0 / (1.0 - ch07.GAMMA * 19 / 20)
    bugs["truncation_is_termination"]["fixed_point"] = round(fixed_point, 4)

    # Overfitting one batch.
    obs, targets = ch07._overfit_case(1)
    graded = ch07.reference_overfit(ch07._seeded_mlp(4, ch07.OVERFIT_OBS_DIM), obs, targets, ch07.OVERFIT_STEPS, ch07.OVERFIT_LR)
    finals = []
    for s in OVERFIT_SEEDS:
        o, t = ch07._overfit_case(100 + s)
        finals.append(ch07.reference_overfit(ch07._seeded_mlp(100 + s, ch07.OVERFIT_OBS_DIM), o, t, ch07.OVERFIT_STEPS,
                                             ch07.OVERFIT_LR)[-1])
    finals = np.array(finals)
    overfit = {"batch": ch07.OVERFIT_BATCH, "obs_dim": ch07.OVERFIT_OBS_DIM, "steps": ch07.OVERFIT_STEPS,
               "lr": ch07.OVERFIT_LR, "graded_first_loss": float(f"{graded[0]:.4g}"),
               "graded_final_loss": float(f"{graded[-1]:.3g}"),
               "other_seeds": {"n": len(finals), "min": float(f"{finals.min():.3g}"), "median": float(f"{np.median(finals):.3g}"),
                               "max": float(f"{finals.max():.3g}")},
               "bound_factor": ch07.OVERFIT_FACTOR}
    print(f"overfit: graded {graded[0]:.3f} -> {graded[-1]:.2e}; 20 other seeds final min {finals.min():.2e} "
          f"median {np.median(finals):.2e} max {finals.max():.2e}")

    split = {"book": {"true_values": [0.5, 1.0, 0.0], "residual_gradient": [0.5, 0.75, 0.25],
                      "source": "Sutton & Barto 2nd ed., Example 11.2 (the A-split example), section 11.5"},
             "ours": {"semi_gradient_detached": a_split(True), "residual_gradient_not_detached": a_split(False)}}
    print(f"A-split: detached {split['ours']['semi_gradient_detached']}, not detached "
          f"{split['ours']['residual_gradient_not_detached']} (book: 0.5 1 0 / 0.5 0.75 0.25)")

    data = {
        "command": "python -m autograder.references.gen_ch07",
        "generated_by": "autograder/references/gen_ch07.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "rlcore": getattr(rlcore, "__version__", "dev")},
        "settings": {"gamma": ch07.GAMMA, "hidden": list(ch07.HIDDEN), "lr": ch07.LR, "num_envs": ch07.NUM_ENVS,
                     "total_timesteps": ch07.TOTAL_TIMESTEPS, "tolerance_fraction": ch07.PROBE_TOLERANCE},
        "published": "none for value learning on the probes: the reference values are the probes' analytic answers "
                     "(rlcore/envs/probes.py). The book's numbers are those of Example 11.2 (a_split).",
        "probes": probes,
        "bugs": bugs,
        "overfit": overfit,
        "a_split": split,
        "seconds": round(time.perf_counter() - start, 1),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} in {data['seconds']} s")


if __name__ == "__main__":
    main()
