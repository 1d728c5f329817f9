"""Regenerate the measurements behind chapter 13's speed bar (autograder/references/ch13_fast_environments.json).

    nice -n 10 python -m autograder.references.gen_ch13        # about 1.5 minutes

`autograder.checks.ch13.speedup` grades the ratio of CPU seconds per vector step, Gymnasium's SyncVectorEnv over
the learner's batched MountainCar-v0, both measured in the same run (best of 3 interleaved rounds). Here the same
measurement (`ch13.measure_speedup`) runs REPEATS times for each of:

- rlcore.envs.fast.MountainCar: NumPy over all cars, the solution's approach;
- three correct envs that loop over the cars (the planted slow variants of tests/planted/ch13.py): plain Python
  floats with math.cos and min/max (the fastest loop we could write), Gymnasium's numpy-scalar step body applied
  car by car, and a list of Gymnasium envs;

at N = 1024 (graded) and N = 256 (to show why the check does not use it). The bar must sit well above every loop's
fastest run and well below the NumPy env's slowest run; tests/test_ch13.py asserts both margins on this file.
There is no published number for this ratio; the throughput figures of section 4 of published_results.md are
stored next to ours for scale.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from autograder.checks import ch13
from rlcore.envs.fast import MountainCar
# The loops are the planted slow variants that tests/test_ch13.py shows to fail the check: one definition of each.
from tests.planted.ch13 import SlowGymnasiumEnvs, SlowNumpyScalars, SlowPythonFloats

OUT = Path(__file__).parent / "ch13_fast_environments.json"
REPEATS = 5
SIZES = (1024, 256)
CONTENDERS = {
    "rlcore NumPy (the solution's approach)": MountainCar,
    "loop: Python floats, math.cos, min/max": SlowPythonFloats,
    "loop: Gymnasium's numpy-scalar step body per car": SlowNumpyScalars,
    "loop: a list of Gymnasium envs": SlowGymnasiumEnvs,
}
PUBLISHED = {
    "EnvPool (Weng et al. 2022)": "Atari simulation only, frames/s with frame skip 4: 12-core laptop 49,439 "
                                  "(async); 256-core DGX-A100 up to about 1.07M (published_results.md section 4)",
    "PufferLib": "'reinforcement learning at millions of steps per second' on one GPU (claim verified, specific "
                 "numbers unverified; published_results.md section 4)",
    "Sample Factory (Petrenko et al. 2020)": "Atari, training included: APPO 135,893 frames/s on 36 cores + 1 GPU; "
                                             "pure simulation 181,740 (published_results.md section 4)",
}


def main() -> None:
    started = time.process_time()
    runs: dict[str, dict[str, list[float]]] = {}
    sps: dict[str, dict[str, list[float]]] = {}
    for n in SIZES:
        runs[str(n)] = {name: [] for name in CONTENDERS}
        sps[str(n)] = {"gymnasium SyncVectorEnv": []} | {name: [] for name in CONTENDERS}
        for repeat in range(REPEATS):
            for name, cls in CONTENDERS.items():  # interleaved, so a busy spell hits every contender
                result = ch13.measure_speedup(cls, n=n, seed=ch13.SPEEDUP_SEED + repeat)
                assert result["guard"] is None, (name, result["guard"])
                runs[str(n)][name].append(round(result["sync"] / result["learner"], 2))
                sps[str(n)][name].append(round(n / result["learner"]))
                sps[str(n)]["gymnasium SyncVectorEnv"].append(round(n / result["sync"]))
            print(f"N={n} repeat {repeat}: " + ", ".join(f"{k.split(' (')[0]} {v[-1]:.1f}x"
                                                      for k, v in runs[str(n)].items()), flush=True)

    summary = {n: {name: {"min": min(r), "median": float(np.median(r)), "max": max(r)} for name, r in by.items()}
               for n, by in runs.items()}
    result = {
        "command": "nice -n 10 python -m autograder.references.gen_ch13",
        "generated_by": "autograder/references/gen_ch13.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "gymnasium": gym.__version__},
        "machine": {"cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "note": "the course's 2-core development machine, shared with other work while this ran"},
        "settings": {"num_envs": ch13.SPEEDUP_N, "speedup_bar": ch13.SPEEDUP_BAR, "rounds": ch13.ROUNDS,
                     "sync_steps_per_round": ch13.SYNC_STEPS, "repeats": REPEATS, "sizes": list(SIZES),
                     "clock": "time.process_time (CPU seconds of this process)",
                     "metric": "CPU seconds per vector step of SyncVectorEnv / of the contender, best round each"},
        "speedup_runs": runs,
        "speedup_summary": summary,
        "steps_per_cpu_second": sps,
        "margins_at_graded_n": {
            "slowest NumPy run / bar": round(min(runs[str(ch13.SPEEDUP_N)]["rlcore NumPy (the solution's approach)"])
                                             / ch13.SPEEDUP_BAR, 2),
            "bar / fastest loop run": round(ch13.SPEEDUP_BAR / max(max(r) for k, r in runs[str(ch13.SPEEDUP_N)].items()
                                                                   if k.startswith("loop")), 2),
        },
        "published": PUBLISHED,
        "seconds": round(time.process_time() - started, 1),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
