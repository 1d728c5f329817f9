"""Proximal Policy Optimization (Schulman et al. 2017), clipped objective, discrete and continuous actions.

    from rlcore.ppo import PPOConfig, train
    result = train(PPOConfig(env_id="CartPole-v1", total_timesteps=100_000, seed=1))
    result.episode_returns[-100:].mean()

    python -m rlcore ppo --env-id CartPole-v1 --seed 1 --total-timesteps 500000 --run-dir runs/ppo
    torchrun --nproc-per-node 2 -m rlcore ppo --env-id CartPole-v1 ...   # data-parallel, see below

Sections, in the order of every algorithm file in rlcore:
config -> seeding -> envs -> networks -> storage -> losses -> loop (collect, targets, update, log).

Storage is time-major: a rollout is T = num_steps steps of N = num_envs environments, arrays [T, N, ...];
`b_` names the rollout flattened to a batch [T * N, ...] and `mb_` one minibatch of it.

The implementation details (Huang et al. 2022, "The 37 implementation details of PPO") that the defaults
follow, each a config field: GAE (gae_lambda), advantage normalization per minibatch (norm_adv), clipped
value loss (clip_vloss), orthogonal init (rlcore.nets), learning-rate annealing (anneal_lr), global
gradient clipping (max_grad_norm), minibatch epochs (update_epochs, num_minibatches), optional early stop
on target_kl, optional observation and reward normalization (norm_obs, norm_reward). Truncation is handled
by bootstrapping from V(final observation), which CleanRL's ppo.py does not do.

On-device environments: with `backend="torch"` (CartPole-v1) the environments are
rlcore.envs.torch_cartpole.TorchCartPole tensors on `device`, so with device="cuda" a rollout never
leaves the GPU: actions go to the env and observations come back as tensors, storage is on the device,
and the episode statistics cross to the host once per rollout, for logging. A NumPy env (every other
backend) gets the actions copied to the host and its outputs copied back at each step; the loop is the
same. `mixed_precision` (bf16 autocast) and `compile` (torch.compile of the loss) are options for large
batches on a GPU; benchmarks/ppo_gpu.py and course/14_large_batch_ppo.ipynb measure what they give.

Distributed (torchrun): `num_envs` and `num_minibatches` describe the whole run; each of W ranks steps
`local_num_envs = num_envs / W` environments with its own seeds, takes minibatches of
`local_minibatch_size`, and averages gradients before each optimizer step. The ranks' shards of a minibatch
together form the minibatch: norm_adv normalizes the advantages with the mean and std of all of them (one
all-reduce per update, rlcore.distributed.global_mean_std), not of a rank's own shard. So W ranks perform the
same updates as one process with all the environments (up to float summation order).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from rlcore import distributed
from rlcore.checkpoint import load_checkpoint, save_checkpoint
from rlcore.config import RunOptions
from rlcore.envs import given_or_made
from rlcore.envs.torch_cartpole import make_on_device
from rlcore.metrics import Recorder, Result
from rlcore.nets import ActorCritic
from rlcore.normalize import ObsNormalizer, RewardScaler
from rlcore.returns import gae
from rlcore.seeding import env_seed, seed_everything

# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PPOConfig(RunOptions):
    """Hyperparameters of a PPO run. Defaults are CleanRL ppo.py's for classic control."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment."""
    seed: int = 1
    """Seeds networks, sampling and environments (env i of rank r starts from seed + r * local_num_envs + i)."""
    total_timesteps: int = 500_000
    """Environment steps over all environments and ranks."""
    num_envs: int = 4
    """Environments stepped together, over all ranks."""
    num_steps: int = 128
    """Steps per environment per rollout (T)."""
    learning_rate: float = 2.5e-4
    """Adam step size (at the start, when annealed)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 = one-step TD advantages, 1 = Monte Carlo."""
    num_minibatches: int = 4
    """Minibatches per epoch; the batch of num_envs * num_steps samples is split into this many."""
    update_epochs: int = 4
    """Passes over each rollout."""
    norm_adv: bool = True
    """Normalize advantages to mean 0, std 1 within each minibatch (with W ranks: the whole minibatch, every
    rank's shard of it, not a rank's own shard)."""
    clip_coef: float = 0.2
    """Clip range epsilon of the probability ratio."""
    clip_vloss: bool = True
    """Clip the value update around the old values, as the policy ratio is clipped."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    target_kl: float | None = None
    """Stop the epochs of an update early once approx_kl exceeds this (None: never)."""
    norm_obs: bool = False
    """Normalize observations with running statistics."""
    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""
    stop_at_return: float | None = None
    """Stop once the mean return of the last 100 training episodes reaches this (None: run to the end).
    The learning-rate schedule still spans total_timesteps, so stopping never changes the updates before it."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many iterations (and at the end) when run_dir is set."""
    mixed_precision: bool = False
    """Run the networks' forward passes under bf16 autocast (the loss and the optimizer stay float32)."""
    compile: bool = False
    """torch.compile the minibatch loss (forward, losses and, through it, backward); compiling costs
    tens of seconds at the start and pays off only when the update dominates (large minibatches)."""

    def __post_init__(self):
        self.require_positive("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs",
                              "checkpoint_every")
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"the batch of num_envs * num_steps = {self.batch_size} samples does not split into "
                             f"num_minibatches = {self.num_minibatches} equal minibatches; choose a divisor.")
        if self.total_timesteps < self.batch_size:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is less than one rollout "
                             f"(num_envs * num_steps = {self.batch_size}); raise it or shrink the rollout.")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gamma and gae_lambda must be in [0, 1], got {self.gamma} and {self.gae_lambda}.")
        if self.clip_coef <= 0:
            raise ValueError(f"clip_coef must be positive, got {self.clip_coef}.")

    @property
    def batch_size(self) -> int:
        """Samples per rollout over all ranks: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Samples per gradient step over all ranks."""
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        """Rollout + update cycles: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size

    def local(self, world_size: int) -> tuple[int, int]:
        """(local_num_envs, local_minibatch_size) of each rank when the run has `world_size` ranks."""
        if self.num_envs % world_size or self.minibatch_size % world_size:
            raise ValueError(f"num_envs = {self.num_envs} and minibatch_size = {self.minibatch_size} must both be "
                             f"divisible by the number of ranks ({world_size}).")
        return self.num_envs // world_size, self.minibatch_size // world_size


# The course's CartPole-v1 settings (chapters 11, 14 and 15 build on them): 32 environments in one NumPy batch and
# one 512-sample minibatch per epoch, 8 epochs; SB3 zoo's discounting (gamma 0.98, lambda 0.8) and no value
# clipping. Sample-efficient (93k-103k steps to 475 on seeds 1-3) but it takes about 1,500 gradient steps to get
# there; CARTPOLE_WALLCLOCK gets there sooner.
CARTPOLE_FAST = dict(num_envs=32, num_steps=16, num_minibatches=1, update_epochs=8, learning_rate=3e-3, gamma=0.98,
                     gae_lambda=0.8, ent_coef=0.0, clip_vloss=False, total_timesteps=200_000)

# Tuned for wall time to 475 on CartPole-v1 on one CPU core (benchmarks/ppo_cartpole.py), on seeds 1-5. On the
# development CPU a gradient step took 2.6 ms on 512 samples and 2.9 ms on 1,024 (per-operation overhead dominates),
# and the policy's forward pass 0.12 ms for 32 environments and 0.22 ms for 256: so twice CARTPOLE_FAST's minibatch,
# a quarter of its gradient steps per sample (2 epochs of 2 minibatches of 1,024), 4 times its environments, and a
# larger learning rate. It needs about 2.5 times the steps of CARTPOLE_FAST, each about 5 times cheaper.
# With gamma 0.99 and lambda 0.95 (CleanRL's) it needed fewer steps than with SB3 zoo's 0.98 / 0.8. On held-out
# seeds 6-15: 10 of 10 reached 475, median 255k steps and 2.2 s (1.4-4.7 s) at about 110k steps/s.
CARTPOLE_WALLCLOCK = dict(num_envs=128, num_steps=16, num_minibatches=2, update_epochs=2, learning_rate=4e-3,
                          gamma=0.99, gae_lambda=0.95, ent_coef=0.0, clip_vloss=False, total_timesteps=1_000_000)

# Tuned for environment steps per second on CartPole-v1 on one CPU core (benchmarks/ppo_cartpole.py), on seeds 1-5:
# 512 environments, so that the per-call overhead of stepping them and of the policy's forward pass is spread over
# 512 samples, and a single pass over each 8,192-step rollout in two gradient steps, with a learning rate to match.
# Among 256, 512 and 1,024 environments, learning rates 1e-2 to 2e-2 and 2 or 4 minibatches, this one reached 475
# in the fewest steps at about 300k steps/s. On held-out seeds 6-15: 10 of 10 reached 475, median 842k steps and
# 2.95 s (1.6-9.9 s) at 277k-312k steps/s: 3 times CARTPOLE_WALLCLOCK's steps at 3 times its speed, with a longer
# tail. benchmarks/README.md reports both.
CARTPOLE_THROUGHPUT = dict(num_envs=512, num_steps=16, num_minibatches=2, update_epochs=1, learning_rate=1.5e-2,
                           gamma=0.99, gae_lambda=0.95, ent_coef=0.0, clip_vloss=False, total_timesteps=3_000_000)

# Tuned for the course's graded Acrobot-v1 curve (autograder/checks/ch11.py): CARTPOLE_FAST's settings unchanged,
# on a budget of 100k steps. On seeds 1000-1005 the last-100 mean return was -82.7 to -86.4 at 100k steps (CleanRL's
# ppo.py: -86.36 at 500k), about 6 s of CPU per seed with rlcore.envs.fast.Acrobot.
ACROBOT_FAST = dict(CARTPOLE_FAST, total_timesteps=100_000)

# Tuned for the continuous-control demonstration of the course (MuJoCo's InvertedPendulum-v5, `pip install
# "gymnasium[mujoco]"`): a Gaussian policy with observation and reward normalization, 16 environments x 64 steps,
# two 512-sample minibatches, 10 epochs. About 9,000 steps per CPU second here; numbers in
# autograder/references/ch11_ppo.json ("continuous").
INVERTED_PENDULUM_FAST = dict(num_envs=16, num_steps=64, num_minibatches=2, update_epochs=10, learning_rate=3e-3,
                              gamma=0.99, gae_lambda=0.95, ent_coef=0.0, clip_vloss=False, norm_obs=True,
                              norm_reward=True, total_timesteps=150_000)


def ppo_loss(agent: ActorCritic, config: PPOConfig, b_obs, b_actions, b_logprobs, b_advantages, b_returns, b_values,
             mb: torch.Tensor, adv_mean: torch.Tensor | None = None, adv_std: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of the minibatch `mb` (indices [B] into the flat batch b_* [T * N, ...]) and its diagnostics
    (detached scalars): the clipped surrogate, the (optionally clipped) value loss and the entropy bonus.

    adv_mean, adv_std: scalars to normalize the advantages with (norm_adv) when `mb` is one rank's shard of
    a minibatch that spans several ranks (rlcore.distributed.global_mean_std, computed before this function
    so that torch.compile never sees a collective); None: the statistics of b_advantages[mb] itself."""
    newlogprob, entropy = agent.log_prob_entropy(b_obs[mb], b_actions[mb])
    newvalue = agent.value(b_obs[mb]).float()  # float32 even under bf16 autocast
    logratio = newlogprob.float() - b_logprobs[mb]
    ratio = logratio.exp()
    with torch.no_grad():
        old_approx_kl = (-logratio).mean()
        approx_kl = ((ratio - 1) - logratio).mean()  # unbiased and >= 0 (Schulman 2020)
        clipfrac = ((ratio - 1.0).abs() > config.clip_coef).float().mean()

    mb_advantages = b_advantages[mb]
    if config.norm_adv:
        if adv_mean is None:  # the minibatch is all here
            adv_mean, adv_std = mb_advantages.mean(), mb_advantages.std()
        mb_advantages = (mb_advantages - adv_mean) / (adv_std + 1e-8)

    # Policy loss: the pessimistic bound, max of the negated unclipped and clipped objectives.
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()

    # Value loss, optionally clipped around the values predicted at collection time.
    if config.clip_vloss:
        v_unclipped = (newvalue - b_returns[mb]) ** 2
        v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -config.clip_coef, config.clip_coef)
        v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
    else:
        v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()

    entropy_loss = entropy.float().mean()
    loss = pg_loss - config.ent_coef * entropy_loss + v_loss * config.vf_coef
    return loss, {"policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(), "entropy": entropy_loss.detach(),
                  "old_approx_kl": old_approx_kl, "approx_kl": approx_kl, "clipfrac": clipfrac}


def train(config: PPOConfig, envs=None) -> Result:
    """Train PPO; returns the agent and its training curve. Resumes from run_dir/checkpoint.pt if present.

    envs: a vector env (rlcore.envs protocol, config.num_envs environments) to train in instead of
    building one from config.env_id; the caller keeps it open. The autograder passes its own here.
    An env with a `device` attribute (rlcore.envs.torch_cartpole) takes and returns tensors on that
    device, which must be config.device.
    """
    # ------------------------------------------------------------------------------------ seeding
    rank, world = distributed.init_from_env(config.device)
    local_num_envs, local_minibatch = config.local(world)
    if world > 1 and (config.norm_obs or config.norm_reward):
        raise ValueError("norm_obs and norm_reward keep running statistics per process, which would give each "
                         "rank a different input scale; run them with one process.")
    rng = seed_everything(config.seed, rank)
    device = config.torch_device()

    # --------------------------------------------------------------------------------------- envs
    if envs is None and config.backend == "torch":
        envs, own_envs = make_on_device(config.env_id, local_num_envs, device), True
    else:
        envs, own_envs = given_or_made(envs, config.env_id, local_num_envs, config.backend)
    # On-device envs take the action tensor as it is; a NumPy env needs it on the host (a copy per step).
    on_device = getattr(envs, "device", None) is not None
    if on_device and _canonical(envs.device) != _canonical(device):
        raise ValueError(f"the environments live on {envs.device} but config.device is {config.device!r}; "
                         "put both on the same device.")
    if on_device and (config.norm_obs or config.norm_reward):
        raise ValueError("norm_obs and norm_reward keep NumPy statistics on the host; an on-device env would "
                         "have to copy every step there. Use them with a NumPy backend.")
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    obs_norm = ObsNormalizer(obs_space.shape) if config.norm_obs else None
    reward_scaler = RewardScaler(local_num_envs, config.gamma) if config.norm_reward else None
    continuous = isinstance(act_space, gym.spaces.Box)

    def to_device(x) -> torch.Tensor:
        """An env output as a tensor on the device: a copy for NumPy, nothing for an on-device tensor."""
        return torch.as_tensor(x, device=device)

    # ----------------------------------------------------------------------------------- networks
    agent = ActorCritic(obs_space, act_space, config.hidden).to(device)
    distributed.broadcast_parameters(agent)
    if rank > 0:  # torch was seeded alike for identical initial parameters; actions must not share their noise
        torch.manual_seed(int(rng.integers(2**31)))
    # fused: one kernel for all parameters instead of ~10 small ops per tensor (4x faster on CPU here).
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5, fused=True)
    # bf16 autocast: matmuls in bfloat16, reductions such as log_softmax in float32 (a no-op when disabled).
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.mixed_precision)  # noqa: E731
    loss_fn = torch.compile(ppo_loss) if config.compile else ppo_loss
    if continuous:
        act_low, act_high = to_device(act_space.low), to_device(act_space.high)

    # ------------------------------------------------------------------------------------ storage
    # Time-major [T, N, ...] tensors on the device; final_obs holds where each step's episode ended
    # (the truncation bootstrap needs it), ep_return / ep_length the episode statistics of each step.
    T, N = config.num_steps, local_num_envs
    zeros = lambda *shape, dtype=torch.float32: torch.zeros((T, N, *shape), dtype=dtype, device=device)  # noqa: E731
    obs_buf, final_obs_buf = zeros(*obs_space.shape), zeros(*obs_space.shape)
    actions_buf = zeros(*act_space.shape, dtype=torch.float32 if continuous else torch.long)
    logprobs_buf, values_buf, rewards_buf = zeros(), zeros(), zeros()
    terminated_buf, truncated_buf = zeros(dtype=torch.bool), zeros(dtype=torch.bool)
    ep_return_buf, ep_length_buf = zeros(dtype=torch.float64), zeros(dtype=torch.long)
    # What the env returns is written into these: on the CPU, NumPy views of the same memory, so a NumPy
    # env's arrays are copied in by NumPy (about 1 us each) instead of being made tensors first (about 5).
    env_bufs = [rewards_buf, final_obs_buf, terminated_buf, truncated_buf, ep_return_buf, ep_length_buf]
    host_buffers = device.type == "cpu"
    if host_buffers:
        env_bufs = [b.numpy() for b in env_bufs]

    # ------------------------------------------------------------------------------ resume or start
    state = load_checkpoint(Path(config.run_dir) / "checkpoint.pt") if config.run_dir else None
    start_iteration, global_step = 1, 0
    if state is not None:
        agent.load_state_dict(state["agent"])
        optimizer.load_state_dict(state["optimizer"])
        if rank == 0:  # the checkpoint holds rank 0's generators; the other ranks draw fresh streams of their own
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
        else:
            rng = np.random.default_rng([config.seed, rank, state["iteration"]])
            torch.manual_seed(int(rng.integers(2**31)))
        start_iteration, global_step = state["iteration"] + 1, state["global_step"]
        if obs_norm is not None:
            obs_norm.stats.load_state_dict(state["obs_norm"])
        if reward_scaler is not None:
            reward_scaler.stats.load_state_dict(state["reward_norm"])
    run_dir = Path(config.run_dir) if config.run_dir else None
    rec = Recorder(config, total_steps=config.num_iterations * config.batch_size, desc=f"ppo {config.env_id}",
                   run_dir=run_dir, main=distributed.is_main(), progress=config.progress,
                   tensorboard=config.tensorboard, resume_state=state)

    # Environments cannot be checkpointed in general, so a resumed run starts fresh episodes from a seed
    # that depends on where it resumes: it continues the run, though not bit-identically.
    raw_obs, _ = envs.reset(seed=env_seed(config.seed + global_step, rank, local_num_envs))
    next_obs = to_device(obs_norm(raw_obs) if obs_norm else raw_obs)
    torch_gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**31)))

    # ---------------------------------------------------------------------------------------- loop
    try:
        for iteration in range(start_iteration, config.num_iterations + 1):
            if config.anneal_lr:
                frac = 1.0 - (iteration - 1.0) / config.num_iterations
                optimizer.param_groups[0]["lr"] = frac * config.learning_rate

            # ---- collect: T steps of N envs with the current policy
            t_collect, first_step = time.perf_counter(), global_step
            for t in range(T):
                obs = next_obs
                with autocast():
                    actions, logprob, value = agent.act(obs)
                # The Gaussian is unbounded; the env gets the action clipped to its bounds.
                env_actions = actions.clamp(act_low, act_high) if continuous else actions
                raw_obs, rewards, terminated, truncated, info = envs.step(
                    env_actions if on_device else env_actions.cpu().numpy())
                global_step += config.num_envs
                if reward_scaler is not None:
                    rewards = reward_scaler(rewards, terminated | truncated)
                final_obs = info["final_obs"]
                if obs_norm is not None:  # the final obs is normalized like any other, without updating stats
                    final_obs = obs_norm(final_obs, update=False)
                    raw_obs = obs_norm(raw_obs)
                obs_buf[t], actions_buf[t], logprobs_buf[t], values_buf[t] = obs, actions, logprob, value
                for buf, x in zip(env_bufs, (rewards, final_obs, terminated, truncated, info["episode_return"],
                                             info["episode_length"])):
                    buf[t] = x if host_buffers else to_device(x)
                next_obs = to_device(raw_obs)
            # The rollout's episode statistics cross to the host once, for the recorder.
            done_h = (terminated_buf | truncated_buf).cpu().numpy()
            ep_return_h, ep_length_h = ep_return_buf.cpu().numpy(), ep_length_buf.cpu().numpy()
            for t in range(T):
                rec.episodes_ended(first_step + (t + 1) * config.num_envs,
                                   {"episode_return": ep_return_h[t], "episode_length": ep_length_h[t]}, done_h[t])
            t_collect = time.perf_counter() - t_collect

            # ---- targets: GAE advantages and TD(lambda) returns, bootstrapping on truncation
            t_update = time.perf_counter()
            with torch.no_grad(), autocast():
                next_values = torch.cat([values_buf[1:], agent.value(next_obs).float().unsqueeze(0)])  # [T, N]
                # A truncated episode bootstraps from V(its final observation), not from V(first observation of
                # the next episode); one batched pass over every row finds no rows on the host.
                final_values = agent.value(final_obs_buf.reshape(T * N, *obs_space.shape)).float().reshape(T, N)
                next_values = torch.where(truncated_buf, final_values, next_values)
            advantages = gae(rewards_buf, values_buf, next_values, terminated_buf, truncated_buf,
                             config.gamma, config.gae_lambda)  # [T, N]
            returns = advantages + values_buf  # [T, N]: the value targets

            b_obs = obs_buf.reshape(T * N, *obs_space.shape)
            b_actions = actions_buf.reshape(T * N, *act_space.shape)
            b_logprobs, b_advantages = logprobs_buf.reshape(-1), advantages.reshape(-1)
            b_returns, b_values = returns.reshape(-1), values_buf.reshape(-1)

            # ---- update: epochs of minibatch gradient steps on the clipped surrogate
            # With W ranks, minibatch k of an epoch is every rank's k-th shard together, and norm_adv normalizes
            # its advantages with the mean and std of all the shards. The epochs' orders are then drawn up front
            # (the same draws), so that one all-reduce per update, not one per epoch, gives the statistics of all
            # its minibatches [E, K]: on CPU ranks each collective costs about as much CPU as a gradient step.
            orders = adv_mean = adv_std = None
            if config.norm_adv and distributed.active():
                orders = torch.stack([torch.randperm(T * N, generator=torch_gen, device=device)
                                      for _ in range(config.update_epochs)])  # [E, T * N]
                adv_mean, adv_std = distributed.global_mean_std(
                    b_advantages[orders].view(config.update_epochs, -1, local_minibatch))  # [E, K] each
            clipfracs = []
            for epoch in range(config.update_epochs):
                order = orders[epoch] if orders is not None else torch.randperm(T * N, generator=torch_gen,
                                                                                 device=device)
                for k, start in enumerate(range(0, T * N, local_minibatch)):
                    mb = order[start:start + local_minibatch]
                    mb_mean, mb_std = (adv_mean[epoch, k], adv_std[epoch, k]) if orders is not None else (None, None)
                    with autocast():
                        loss, stats = loss_fn(agent, config, b_obs, b_actions, b_logprobs, b_advantages, b_returns,
                                              b_values, mb, mb_mean, mb_std)
                    clipfracs.append(stats["clipfrac"])

                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    distributed.all_reduce_gradients(agent)
                    torch.nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
                    optimizer.step()

                # Every rank must take the same decision, or one would wait forever in the next all-reduce.
                if config.target_kl is not None and \
                        distributed.all_reduce_mean(stats["approx_kl"].item(), device) > config.target_kl:
                    break
            t_update = time.perf_counter() - t_update

            # ---- log
            var_y = b_returns.var()
            explained_var = float("nan") if var_y == 0 else (1 - (b_returns - b_values).var() / var_y).item()
            rec.log(global_step, {
                "charts/learning_rate": optimizer.param_groups[0]["lr"], "charts/sps": rec.sps(global_step),
                "losses/value_loss": stats["value_loss"].item(), "losses/policy_loss": stats["policy_loss"].item(),
                "losses/entropy": stats["entropy"].item(), "losses/old_approx_kl": stats["old_approx_kl"].item(),
                "losses/approx_kl": stats["approx_kl"].item(), "losses/clipfrac": torch.stack(clipfracs).mean().item(),
                "losses/explained_variance": explained_var, "time/collect": t_collect, "time/update": t_update,
            })
            rec.advance(global_step)
            reached = config.stop_at_return is not None and rec.reached(config.stop_at_return)
            if run_dir is not None and distributed.is_main() and (
                    iteration % config.checkpoint_every == 0 or iteration == config.num_iterations or reached):
                rec.flush()
                save_checkpoint(run_dir / "checkpoint.pt", {
                    "agent": agent.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration,
                    "global_step": global_step, "episodes": rec.episodes, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "config": dataclasses.asdict(config),
                    "obs_norm": obs_norm.stats.state_dict() if obs_norm else None,
                    "reward_norm": reward_scaler.stats.state_dict() if reward_scaler else None})
            # Rank 0 sees only its own episodes, so it decides for everyone (1.0 = stop).
            if config.stop_at_return is not None and distributed.all_reduce_mean(
                    float(reached) if distributed.is_main() else 0.0, device) > 0:
                break
    finally:
        rec.close()
        if own_envs:
            envs.close()
    return rec.result(config, agent, global_step)


def _canonical(device) -> torch.device:
    """cuda and cuda:<current> name the same device; make them compare equal."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
