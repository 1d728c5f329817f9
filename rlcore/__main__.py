"""Command line: train any rlcore algorithm, with every config field as a flag.

    python -m rlcore ppo --env-id CartPole-v1 --seed 1 --total-timesteps 500000 --run-dir runs/ppo-1
    python -m rlcore dqn --env-id CartPole-v1 --double-dqn --run-dir runs/dqn-1
    python -m rlcore ppo --help                 # every field, its default and its meaning
    torchrun --nproc-per-node 2 -m rlcore ppo --env-id CartPole-v1 --num-envs 8 ...

The run directory gets config.json, metrics.csv (global_step plus rlcore.metrics.VOCABULARY) and
checkpoint.pt; running the same command again resumes from the checkpoint. The flags are generated from
the config dataclasses, and their help text from the docstring under each field, so they cannot drift.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import sys
import typing

ALGORITHMS = {"ppo": "PPOConfig", "dqn": "DQNConfig", "a2c": "A2CConfig", "reinforce": "REINFORCEConfig"}


def field_docs(cls) -> dict[str, str]:
    """The docstring written under each field of a dataclass and of its dataclass bases (Python keeps
    none of them at run time)."""
    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                    and isinstance(getattr(nxt, "value", None), ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def _optional(kind):
    """A parser for `float | None`-style fields: "none" gives None."""
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per dataclass field: --field-name, typed from the annotation, help from the field's docstring."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    # The algorithm's own hyperparameters first, the shared run options (rlcore.config.RunOptions) after them.
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name in inherited):
        flag = "--" + f.name.replace("_", "-")
        flags = [flag, "--env"] if f.name == "env_id" else [flag]
        hint = hints[f.name]
        help_text = f"{docs.get(f.name, '')} (default: {f.default})"
        args = typing.get_args(hint)
        if hint is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(*flags, type=args[0], nargs="+", default=f.default, metavar="N", help=help_text)
        elif type(None) in args:  # X | None
            kind = next(a for a in args if a is not type(None))
            parser.add_argument(*flags, type=_optional(kind), default=f.default, help=help_text + "; 'none' for None")
        else:
            parser.add_argument(*flags, type=hint, default=f.default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlcore", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="algorithm", required=True, metavar="{" + ",".join(ALGORITHMS) + "}")
    for name, cls_name in ALGORITHMS.items():
        module = importlib.import_module(f"rlcore.{name}")
        cls = getattr(module, cls_name)
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0],
                           description=module.__doc__.strip().splitlines()[0],
                           )
        add_config_arguments(p, cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"rlcore.{args.algorithm}")
    cls = getattr(module, ALGORITHMS[args.algorithm])
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        config = cls(**values)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = module.train(config)
    from rlcore import distributed

    if distributed.is_main():
        hit = result.steps_to_threshold(_threshold(config.env_id)) if _threshold(config.env_id) is not None else None
        print(f"{args.algorithm} {config.env_id} seed {config.seed}: {result.global_step:,} steps in "
              f"{result.wall_time:.1f} s ({result.sps:,.0f} steps/s); {result.episode_returns.size} episodes; "
              f"mean return of the last 100: {result.last_mean():.2f}"
              + (f"; reward threshold reached at step {hit:,}" if hit is not None else ""))
        if config.run_dir:
            print(f"metrics: {config.run_dir}/metrics.csv  config: {config.run_dir}/config.json")
    distributed.shutdown()
    return 0


def _threshold(env_id: str) -> float | None:
    """Gymnasium's reward_threshold of the env (CartPole-v1: 475), or None."""
    import gymnasium as gym

    try:
        return gym.spec(env_id).reward_threshold
    except Exception:  # an unregistered id already failed in train(); nothing to report here
        return None


if __name__ == "__main__":
    sys.exit(main())
