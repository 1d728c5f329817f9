"""Network builders shared by the deep RL algorithms: MLPs with orthogonal init, actor and critic heads.

Shapes: observations [B, obs_dim] float32 (B = batch), discrete actions [B] int64, continuous actions
[B, act_dim] float32, values [B], log-probabilities and entropies [B].

Orthogonal initialisation with gain sqrt(2) for hidden layers, 0.01 for the policy's output layer
(near-uniform initial policy, so early exploration is not decided by chance) and 1 for the value output
is one of PPO's implementation details that measurably matters (Andrychowicz et al. 2021; Huang et al.
2022, "The 37 implementation details of PPO", detail 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class _NumpyTanh(torch.autograd.Function):
    """tanh of a float32 CPU tensor computed by NumPy; the backward is torch's own, 1 - tanh(x)^2."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = _numpy_tanh(x.detach())
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Tanh):
    """nn.Tanh, with float32 CPU tensors computed by NumPy's vectorized tanh.

    Why: in the PyTorch 2.13 CPU wheels torch.tanh is not vectorized the way NumPy's is: on [8192, 64]
    float32, 1.5 ms against 0.2 ms for np.tanh (AVX-512 machine, one thread), and the four tanh layers of
    an ActorCritic were a third of a PPO gradient step. NumPy's result differs from torch.tanh's by at most
    one unit in the last place (tests/test_nets.py). Everything NumPy cannot stand in for takes torch.tanh:
    other devices, dtypes and layouts, and tensors seen by a tracer or transform (torch.compile, torch.jit.trace,
    torch.fx, torch.func's vmap and grad), which would otherwise record a constant or find no storage.
    Still an nn.Tanh to isinstance checks.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _numpy_can_compute(x):
            return torch.tanh(x)
        if not (x.requires_grad and torch.is_grad_enabled()):  # no graph to record: skip autograd's bookkeeping
            return _numpy_tanh(x)
        return _NumpyTanh.apply(x)


def _numpy_tanh(x: torch.Tensor) -> torch.Tensor:
    """np.tanh of a tensor without a graph, as a new tensor."""
    return torch.from_numpy(np.tanh(x.numpy()))


# torch.func's transforms wrap tensors in ones without storage; this private query tells them apart. Without it
# (another torch version), every tensor counts as wrapped and Tanh takes torch.tanh: slower, never wrong.
_is_functorch_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor",
                                lambda x: True)


def _numpy_can_compute(x) -> bool:
    """Whether x is a plain float32 CPU tensor in eager mode, whose memory NumPy may read. The tracer checks
    come first, so that torch.compile sees a constant and never traces the rest."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and type(x) is torch.Tensor and x.device.type == "cpu" and x.dtype == torch.float32
            and x.layout == torch.strided and not _is_functorch_wrapped(x))


def layer_init(layer: nn.Linear | nn.Conv2d, std: float = math.sqrt(2), bias: float = 0.0):
    """Orthogonal weights scaled by `std`, constant bias; returns the layer."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, activation: type[nn.Module] = nn.Tanh,
        out_std: float = 1.0) -> nn.Sequential:
    """in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim, `activation` between layers, none at the end."""
    sizes = [int(in_dim), *map(int, hidden)]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [layer_init(nn.Linear(a, b)), activation()]
    layers.append(layer_init(nn.Linear(sizes[-1], int(out_dim)), std=out_std))
    return nn.Sequential(*layers)


def nature_cnn(in_channels: int, out_dim: int = 512) -> nn.Sequential:
    """The DQN Nature CNN for 84x84 frames: [B, C, 84, 84] uint8-scaled floats -> [B, out_dim]."""
    return nn.Sequential(
        layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
        layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
        layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
        nn.Flatten(),
        layer_init(nn.Linear(64 * 7 * 7, out_dim)), nn.ReLU(),
    )


def obs_dim(space: gym.Space) -> int:
    """Flat size of a Box observation space; a clear error for anything else."""
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"the MLP networks take Box observations, got {space}. Wrap the env "
                         "(e.g. gymnasium.wrappers.FlattenObservation) or use nature_cnn for images.")
    return int(np.prod(space.shape))


class ActorCritic(nn.Module):
    """Separate policy and value MLPs (no shared trunk: on classic control sharing hurts and couples
    the two losses' scales).

    Discrete action spaces get a categorical policy over logits [B, n]; Box action spaces a diagonal
    Gaussian with a state-independent learned log standard deviation [act_dim]. Actions from the
    Gaussian are not squashed or clipped here: the caller clips them to the action bounds when it steps
    the environment, and stores the unclipped action for the log-probability.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden: Sequence[int] = (64, 64), activation: type[nn.Module] = Tanh):
        super().__init__()
        n_in = obs_dim(observation_space)
        self.continuous = isinstance(action_space, gym.spaces.Box)
        if self.continuous:
            n_out = int(np.prod(action_space.shape))
            self.log_std = nn.Parameter(torch.zeros(n_out))
        elif isinstance(action_space, gym.spaces.Discrete):
            n_out = int(action_space.n)
        else:
            raise ValueError(f"ActorCritic supports Discrete and Box action spaces, got {action_space}.")
        self.actor = mlp(n_in, hidden, n_out, activation=activation, out_std=0.01)
        self.critic = mlp(n_in, hidden, 1, activation=activation, out_std=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs): [B, obs_dim] -> [B]."""
        return self.critic(obs).squeeze(-1)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """pi(. | obs) for a batch [B, obs_dim]: Categorical over [B, n] or Normal with loc [B, act_dim]."""
        out = self.actor(obs)
        if self.continuous:
            return torch.distributions.Normal(out, self.log_std.exp().expand_as(out), validate_args=False)
        return torch.distributions.Categorical(logits=out, validate_args=False)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | s) and the entropy of pi(. | s), both [B] (summed over action dims when continuous).

        Written out rather than through torch.distributions: on small batches the distribution objects'
        broadcasting costs several times the arithmetic (measured: 1 ms vs 0.1 ms for B = 256 on CPU).
        tests/test_nets.py checks both paths agree."""
        out = self.actor(obs)
        if self.continuous:
            z = (actions - out) / self.log_std.exp()
            log_prob = (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)
            entropy = (0.5 + _HALF_LOG_2PI + self.log_std).sum(-1).expand(out.shape[0])
            return log_prob, entropy
        log_p = out.log_softmax(-1)  # [B, n]
        log_prob = log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return log_prob, entropy

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for a batch of observations: actions [B] or [B, act_dim], log pi(a|s) [B], V(s) [B].

        Runs once per environment step, so it skips torch.distributions (whose object construction costs
        more than the arithmetic for small batches); tests check it against `distribution`."""
        out = self.actor(obs)
        if self.continuous:
            std = self.log_std.exp()
            actions = out + std * torch.randn_like(out)
            z = (actions - out) / std
            log_prob = (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)
        else:
            log_p = out.log_softmax(-1)  # [B, n]
            # Gumbel-max: argmax(log p - log E), E ~ Exp(1), is an exact sample from softmax(logits).
            actions = (log_p - torch.empty_like(log_p).exponential_().log()).argmax(-1)
            log_prob = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return actions, log_prob, self.value(obs)


class QNetwork(nn.Module):
    """Q(s, .) for discrete actions: [B, obs_dim] -> [B, n_actions] (DQN). Default init (not
    orthogonal): DQN's reference implementations use PyTorch's default."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden: Sequence[int] = (120, 84)):
        super().__init__()
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {action_space}.")
        sizes = [obs_dim(observation_space), *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], int(action_space.n)))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
