"""Vector-env throughput on CartPole-v1, Acrobot-v1 and MountainCar-v0: rlcore's backends against Gymnasium's own vector envs.

What a learner would otherwise use is `gymnasium.vector.SyncVectorEnv` (a loop in one process) or
`AsyncVectorEnv` (one process per env). All run the same `gym.make(env_id)` envs with
SAME-STEP autoreset and the same pre-drawn random actions, in one run of this script, and we report
environment steps per second (num_envs x vector steps / seconds, best of 3 interleaved rounds) and
the ratio to rlcore's serial backend at the same N. Start-up (process creation) is timed separately and not in the rate.
Where rlcore.envs.fast has a batched version of the env (CartPole-v1, Acrobot-v1, MountainCar-v0), it runs
too, and its ratio to SyncVectorEnv is reported.

    python benchmarks/vector_envs.py [--env-id CartPole-v1 Acrobot-v1 MountainCar-v0] [--num-envs 1 8 64]
                                     [--env-steps 20000] [--merge]

--merge keeps the rows of the other env ids already in the JSON file, so one env can be re-measured alone.
With --profile, a PPO-shaped loop (rlcore's ActorCritic, 32 envs x 16 steps, 8 epochs of one minibatch) is also
timed by phase (env step, policy inference, host-device transfer, update; rlcore.profiling.PhaseTimer, CPU
seconds) for each env id, with its Gymnasium envs in a loop and with its batched version.

CartPole's step is ~10 microseconds of Python, cheaper than a pipe round trip, so this is the
worst case for processes: they pay off only when an env step costs more than the communication
(`--env-id rlcore/Counter-v0 --step-seconds 0.001` shows the other side).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlcore.envs import SerialVectorEnv, SubprocessVectorEnv, make_env
from rlcore.envs.make import FAST_ENVS


def gymnasium_sync(env_id: str, n: int, env_kwargs: dict):
    return gym.vector.SyncVectorEnv([partial(make_env, env_id, **env_kwargs)] * n,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def gymnasium_async(env_id: str, n: int, env_kwargs: dict):
    return gym.vector.AsyncVectorEnv([partial(make_env, env_id, **env_kwargs)] * n,
                                     autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def rlcore_fast(env_id: str, n: int, env_kwargs: dict):
    from rlcore.envs import fast
    return getattr(fast, FAST_ENVS[env_id])(n, **env_kwargs)


def candidates(env_id: str, n: int) -> dict:
    """name -> constructor(env_id, n, env_kwargs) for every backend measured at this N."""
    result = {
        "rlcore serial": lambda e, n, kw: SerialVectorEnv(e, n, env_kwargs=kw),
        "rlcore subprocess 1 worker": lambda e, n, kw: SubprocessVectorEnv(e, n, num_workers=1, env_kwargs=kw),
    }
    if n >= 2:
        result["rlcore subprocess 2 workers"] = lambda e, n, kw: SubprocessVectorEnv(
            e, n, num_workers=2, env_kwargs=kw)
        result["rlcore subprocess 2 workers, pipes"] = lambda e, n, kw: SubprocessVectorEnv(
            e, n, num_workers=2, shared_memory=False, env_kwargs=kw)
    result["gymnasium SyncVectorEnv"] = gymnasium_sync
    result["gymnasium AsyncVectorEnv"] = gymnasium_async
    if env_id in FAST_ENVS and importlib.util.find_spec("rlcore.envs.fast") is not None:
        result["rlcore fast (NumPy)"] = rlcore_fast
    return result


def measure_all(makers: dict, env_id: str, n: int, vector_steps: int, env_kwargs: dict, repeats: int,
                seed: int = 0) -> list[dict]:
    """Build every backend, then time `vector_steps` steps of each in `repeats` interleaved rounds
    and keep each one's best round: on a shared machine the slow rounds measure the neighbours."""
    num_actions = make_env(env_id, **env_kwargs).action_space.n
    actions = np.random.default_rng(seed).integers(0, num_actions, size=(vector_steps + 10, n))
    built, startup = {}, {}
    try:
        for name, make in makers.items():
            start = time.perf_counter()
            built[name] = make(env_id, n, env_kwargs)
            built[name].reset(seed=seed)
            startup[name] = time.perf_counter() - start
            for t in range(10):  # warm-up: first steps pay for lazy allocations and page faults
                built[name].step(actions[t])
        best = {name: float("inf") for name in built}
        for _ in range(repeats):
            for name, envs in built.items():
                start = time.perf_counter()
                for t in range(10, vector_steps + 10):
                    envs.step(actions[t])
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        for envs in built.values():
            envs.close()
    return [{"env_id": env_id, "backend": name, "num_envs": n, "vector_steps": vector_steps, "best_seconds": round(best[name], 4),
             "steps_per_s": round(n * vector_steps / best[name]), "startup_s": round(startup[name], 3)}
            for name in built]


def profile_ppo_loop(env_id: str, num_envs: int = 32, num_steps: int = 16, epochs: int = 8,
                     iterations: int = 12, seed: int = 0) -> dict[str, dict[str, float]]:
    """CPU ms per 1000 env steps of each phase of a PPO-shaped loop, for the Gymnasium envs in a loop
    (SerialVectorEnv) and, where rlcore.envs.fast has the env, its batched version. The first 2 iterations
    are a warm-up."""
    import torch

    from rlcore.nets import ActorCritic
    from rlcore.profiling import PhaseTimer

    torch.set_num_threads(1)
    backends = {"rlcore serial": lambda: SerialVectorEnv(env_id, num_envs)}
    if env_id in FAST_ENVS:
        backends["rlcore fast (NumPy)"] = lambda: rlcore_fast(env_id, num_envs, {})
    out = {}
    for name, make in backends.items():
        envs = make()
        torch.manual_seed(seed)
        agent = ActorCritic(envs.single_observation_space, envs.single_action_space)
        optimizer = torch.optim.Adam(agent.parameters(), lr=3e-4, eps=1e-5, fused=True)
        timer = PhaseTimer()
        obs_np, _ = envs.reset(seed=seed)
        for iteration in range(iterations):
            if iteration == 2:
                timer.reset()
            obs_buf, act_buf, logp_buf, ret_buf = [], [], [], []
            for _ in range(num_steps):
                with timer.phase("host-device transfer"):
                    obs = torch.as_tensor(obs_np)
                with timer.phase("policy inference"):
                    actions, logprob, value = agent.act(obs)
                with timer.phase("host-device transfer"):
                    actions_np = actions.numpy()
                with timer.phase("env step"):
                    obs_np, rewards, terminated, truncated, _ = envs.step(actions_np)
                with timer.phase("host-device transfer"):
                    ret_buf.append(torch.as_tensor(rewards))
                obs_buf.append(obs)
                act_buf.append(actions)
                logp_buf.append(logprob)
            with timer.phase("update"):
                b_obs, b_act, b_logp = torch.cat(obs_buf), torch.cat(act_buf), torch.cat(logp_buf)
                b_ret = torch.cat(ret_buf)  # a stand-in target: the update's cost, not its quality, is measured
                for _ in range(epochs):
                    newlogp, _ = agent.log_prob_entropy(b_obs, b_act)
                    ratio = (newlogp - b_logp).exp()
                    adv = b_ret - b_ret.mean()
                    loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean() + 0.5 * (
                        agent.value(b_obs) - b_ret).square().mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        envs.close()
        steps = (iterations - 2) * num_steps * num_envs
        out[name] = {phase: round(1e6 * seconds / steps, 2) for phase, seconds in timer.cpu.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", nargs="+", default=["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--env-steps", type=int, default=20000,
                        help="environment steps per measurement (num_envs x vector steps)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best one counts")
    parser.add_argument("--step-seconds", type=float, default=None,
                        help="for rlcore/Counter-v0: seconds each env step sleeps")
    parser.add_argument("--json", default="benchmarks/results/vector_envs.json")
    parser.add_argument("--merge", action="store_true", help="keep the JSON's rows of env ids not measured now")
    parser.add_argument("--profile", action="store_true", help="also time a PPO-shaped loop by phase")
    args = parser.parse_args()
    env_kwargs = {} if args.step_seconds is None else {"step_seconds": args.step_seconds}

    rows = []
    for env_id in args.env_id:
        print(f"\n{env_id}\n{'N':>3}  {'backend':<36} {'steps/s':>10}  {'vs serial':>9}  {'start-up':>8}")
        for n in args.num_envs:
            vector_steps = max(50, args.env_steps // n)
            measured = measure_all(candidates(env_id, n), env_id, n, vector_steps, env_kwargs, args.repeats)
            baseline = measured[0]["steps_per_s"]  # the first candidate is rlcore serial
            for row in measured:
                row["vs_rlcore_serial"] = round(row["steps_per_s"] / baseline, 2)
                rows.append(row)
                print(f"{n:>3}  {row['backend']:<36} {row['steps_per_s']:>10,}  {row['vs_rlcore_serial']:>8}x  "
                      f"{row['startup_s']:>7.2f}s", flush=True)

    def rate(env_id: str, name: str, n: int) -> float | None:
        return next((r["steps_per_s"] for r in rows
                     if r["env_id"] == env_id and r["backend"] == name and r["num_envs"] == n), None)

    comparisons = {}
    pairs = {"rlcore serial / gymnasium SyncVectorEnv": ("rlcore serial", "gymnasium SyncVectorEnv"),
             "rlcore subprocess 2 workers / gymnasium AsyncVectorEnv":
                 ("rlcore subprocess 2 workers", "gymnasium AsyncVectorEnv"),
             "shared memory / pipes (2 workers)":
                 ("rlcore subprocess 2 workers", "rlcore subprocess 2 workers, pipes"),
             "rlcore fast (NumPy) / gymnasium SyncVectorEnv": ("rlcore fast (NumPy)", "gymnasium SyncVectorEnv")}
    for env_id in args.env_id:
        for n in args.num_envs:
            for label, (a, b) in pairs.items():
                if rate(env_id, a, n) and rate(env_id, b, n):
                    comparisons[f"{env_id} N={n}: {label}"] = round(rate(env_id, a, n) / rate(env_id, b, n), 2)

    print("\n" + "\n".join(f"{k:<80} {v}" for k, v in comparisons.items()))
    profiles = {}
    if args.profile:
        for env_id in args.env_id:
            profiles[env_id] = profile_ppo_loop(env_id)
            for backend, phases in profiles[env_id].items():
                print(f"{env_id} {backend}: " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
                      + " (CPU ms per 1000 env steps)")
    earlier = json.loads(Path(args.json).read_text()) if args.merge and Path(args.json).exists() else {}
    if earlier:
        kept = [r for r in earlier.get("rows", []) if r["env_id"] not in args.env_id]
        rows = kept + rows
        comparisons = {k: v for k, v in earlier.get("ratios", {}).items()
                       if not any(k.startswith(f"{e} ") for e in args.env_id)} | comparisons
        profiles = {k: v for k, v in earlier.get("profiles", {}).items() if k not in args.env_id} | profiles
        measured_ids = sorted({r["env_id"] for r in rows})
    else:
        measured_ids = list(args.env_id)
    result = {
        "benchmark": f"vector env steps per second, {', '.join(measured_ids)}, random actions, SAME-STEP autoreset, best of {args.repeats} interleaved rounds",
        "env_kwargs": env_kwargs,
        "rows": rows,
        "ratios": comparisons,
        "profiles": profiles,
        "profile_note": "CPU ms per 1000 env steps by phase of a PPO-shaped loop (32 envs x 16 steps, 8 epochs of "
                        "one minibatch, rlcore ActorCritic 64-64), iterations 3-12 of 12",
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "numpy": np.__version__,
                    "gymnasium": gym.__version__},
        "command": " ".join(["nice -n 10 python benchmarks/vector_envs.py", *sys.argv[1:]]),
        "merged_from_earlier_runs": sorted({r["env_id"] for r in rows} - set(args.env_id)),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
