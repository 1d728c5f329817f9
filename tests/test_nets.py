"""rlcore.nets: the hand-written sampling and log-probabilities of ActorCritic against torch.distributions
(`ActorCritic.distribution` is the reference), orthogonal initialisation, and the errors for spaces
the networks do not support.

Frequency checks use 5 standard errors with fixed seeds: deterministic, and a correct sampler would
fail one such bound with probability about 6e-7 under a fresh seed.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlcore.nets import ActorCritic, QNetwork, Tanh, layer_init, mlp, nature_cnn, obs_dim

Z = 5.0
OBS_SPACE = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: extra intra-op threads only contend for the cores (and slow a shared machine 5x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_agent(action_space: gym.Space, seed: int = 0, *, sharpen: float = 1.0, log_std=None) -> ActorCritic:
    """An ActorCritic with its policy made far from uniform: the output layer's weights scaled by
    `sharpen` (the 0.01 init would make every distribution almost the same), log_std set if given."""
    torch.manual_seed(seed)
    agent = ActorCritic(OBS_SPACE, action_space)
    with torch.no_grad():
        agent.actor[-1].weight.mul_(sharpen)
        agent.actor[-1].bias.copy_(torch.linspace(-0.5, 0.5, agent.actor[-1].bias.numel()))
        if log_std is not None:
            agent.log_std.copy_(torch.as_tensor(log_std))
    return agent


def random_obs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).uniform(-1, 1, size=(n, 4)), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Sampling follows the distribution
# ---------------------------------------------------------------------------------------------


def test_discrete_samples_follow_the_categorical():
    agent = make_agent(gym.spaces.Discrete(3), sharpen=100.0)
    states, repeats = random_obs(3, seed=1), 20_000
    obs = states.repeat_interleave(repeats, dim=0)  # [3 * repeats, 4]
    torch.manual_seed(1)
    actions, _, _ = agent.act(obs)
    probs = agent.distribution(states).probs.detach().numpy()  # [3, 3]
    assert probs.min() < 0.2 and probs.max() > 0.4, "the test needs distributions far from uniform"
    counts = np.stack([np.bincount(a, minlength=3) for a in actions.numpy().reshape(3, repeats)])
    for s in range(3):
        for a in range(3):
            p = probs[s, a]
            sd = math.sqrt(repeats * p * (1 - p))
            assert abs(counts[s, a] - repeats * p) <= Z * sd, \
                f"state {s}, action {a}: {counts[s, a]} of {repeats}, expected {repeats * p:.0f} +- {Z * sd:.0f}"


def test_gaussian_samples_follow_the_normal():
    agent = make_agent(gym.spaces.Box(-1.0, 1.0, shape=(2,)), sharpen=50.0, log_std=[-0.7, 0.4])
    state, n = random_obs(1, seed=2), 40_000
    torch.manual_seed(2)
    actions, _, _ = agent.act(state.expand(n, 4))
    loc = agent.actor(state)[0].detach().numpy()
    std = agent.log_std.exp().detach().numpy()
    a = actions.numpy()
    assert a.shape == (n, 2)
    for d in range(2):
        assert abs(a[:, d].mean() - loc[d]) <= Z * std[d] / math.sqrt(n)
        # The sample variance has standard error sigma^2 * sqrt(2 / n) for a normal.
        assert abs(a[:, d].var() - std[d] ** 2) <= Z * std[d] ** 2 * math.sqrt(2 / n)
    assert abs(np.corrcoef(a.T)[0, 1]) <= Z / math.sqrt(n)  # diagonal: independent dimensions


def test_act_is_reproducible_under_the_torch_seed_and_carries_no_gradient():
    agent = make_agent(gym.spaces.Discrete(4), sharpen=10.0)
    obs = random_obs(64)
    torch.manual_seed(5)
    first = agent.act(obs)
    torch.manual_seed(5)
    second = agent.act(obs)
    for x, y in zip(first, second):
        assert torch.equal(x, y)
        assert not x.requires_grad


# ---------------------------------------------------------------------------------------------
# Hand-written log-probabilities and entropies equal torch.distributions'
# ---------------------------------------------------------------------------------------------

SPACES = {
    "discrete-2": gym.spaces.Discrete(2),
    "discrete-5": gym.spaces.Discrete(5),
    "box-1": gym.spaces.Box(-2.0, 2.0, shape=(1,)),
    "box-3": gym.spaces.Box(-1.0, 1.0, shape=(3,)),
}


def reference_log_prob_entropy(agent: ActorCritic, obs, actions):
    dist = agent.distribution(obs)
    if agent.continuous:
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)
    return dist.log_prob(actions), dist.entropy()


@pytest.mark.parametrize("name", SPACES)
def test_act_log_prob_and_value_match_the_distribution(name):
    space = SPACES[name]
    log_std = None if isinstance(space, gym.spaces.Discrete) else np.linspace(-1.0, 0.5, space.shape[0])
    agent = make_agent(space, seed=3, sharpen=30.0, log_std=log_std)
    obs = random_obs(256, seed=3)
    actions, log_prob, value = agent.act(obs)
    with torch.no_grad():
        expected_lp, _ = reference_log_prob_entropy(agent, obs, actions)
        torch.testing.assert_close(log_prob, expected_lp, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(value, agent.value(obs))
    assert value.shape == (256,) and log_prob.shape == (256,)
    assert actions.shape == ((256,) if isinstance(space, gym.spaces.Discrete) else (256, *space.shape))
    if isinstance(space, gym.spaces.Discrete):
        assert actions.dtype == torch.int64 and actions.min() >= 0 and actions.max() < space.n


@pytest.mark.parametrize("name", SPACES)
def test_log_prob_entropy_and_gradients_match_torch_distributions(name):
    space = SPACES[name]
    log_std = None if isinstance(space, gym.spaces.Discrete) else np.linspace(0.3, -0.8, space.shape[0])
    agent = make_agent(space, seed=4, sharpen=30.0, log_std=log_std)
    obs = random_obs(128, seed=4)
    gen = torch.Generator().manual_seed(4)
    if isinstance(space, gym.spaces.Discrete):
        actions = torch.randint(0, space.n, (128,), generator=gen)
    else:
        actions = torch.randn(128, *space.shape, generator=gen) * 2.0

    log_prob, entropy = agent.log_prob_entropy(obs, actions)
    expected_lp, expected_ent = reference_log_prob_entropy(agent, obs, actions)
    assert log_prob.shape == entropy.shape == (128,)
    torch.testing.assert_close(log_prob, expected_lp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, expected_ent, rtol=1e-5, atol=1e-5)

    # PPO differentiates these: the gradients must agree too (log_std included).
    def grads(lp, ent):
        agent.zero_grad()
        (lp.mean() + 0.1 * ent.mean()).backward()
        return [p.grad.clone() for p in agent.actor.parameters()] + \
            ([agent.log_std.grad.clone()] if agent.continuous else [])

    for g_hand, g_ref in zip(grads(*agent.log_prob_entropy(obs, actions)),
                             grads(*reference_log_prob_entropy(agent, obs, actions))):
        torch.testing.assert_close(g_hand, g_ref, rtol=1e-4, atol=1e-6)


def test_discrete_log_prob_is_of_the_action_taken():
    # Hand case: known logits, so log pi(a) = logit_a - logsumexp(logits).
    agent = ActorCritic(OBS_SPACE, gym.spaces.Discrete(3))
    with torch.no_grad():
        agent.actor[-1].weight.zero_()
        agent.actor[-1].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    obs = torch.zeros(3, 4)
    log_prob, entropy = agent.log_prob_entropy(obs, torch.tensor([0, 1, 2]))
    lse = math.log(1 + math.e + math.e**2)
    torch.testing.assert_close(log_prob, torch.tensor([-lse, 1 - lse, 2 - lse]))
    p = np.exp(np.array([0.0, 1.0, 2.0]) - lse)
    torch.testing.assert_close(entropy, torch.full((3,), float(-(p * np.log(p)).sum())))


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------


def assert_orthogonal(weight: torch.Tensor, gain: float) -> None:
    """Rows (or columns, whichever are fewer) orthogonal with norm `gain`."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    torch.testing.assert_close(gram, gain**2 * torch.eye(gram.shape[0], dtype=torch.float64), rtol=0, atol=1e-5)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, shape=(2,))])
def test_orthogonal_init_gains(space):
    torch.manual_seed(0)
    agent = ActorCritic(OBS_SPACE, space, hidden=(64, 32))
    for net, out_gain in [(agent.actor, 0.01), (agent.critic, 1.0)]:
        linears = [m for m in net if isinstance(m, nn.Linear)]
        assert [tuple(m.weight.shape) for m in linears] == [(64, 4), (32, 64), (linears[-1].out_features, 32)]
        for layer in linears[:-1]:
            assert_orthogonal(layer.weight, math.sqrt(2))
        assert_orthogonal(linears[-1].weight, out_gain)
        for layer in linears:
            assert torch.count_nonzero(layer.bias) == 0
    if agent.continuous:
        assert torch.count_nonzero(agent.log_std) == 0  # initial std 1


def test_initial_policy_is_near_uniform():
    torch.manual_seed(0)
    agent = ActorCritic(OBS_SPACE, gym.spaces.Discrete(4))
    obs = torch.as_tensor(np.random.default_rng(0).normal(0, 3, size=(512, 4)), dtype=torch.float32)
    probs = agent.distribution(obs).probs
    assert (probs - 0.25).abs().max() < 0.01
    _, entropy = agent.log_prob_entropy(obs, torch.zeros(512, dtype=torch.long))
    assert entropy.min() > math.log(4) - 1e-3


# ---------------------------------------------------------------------------------------------
# rlcore.nets.Tanh (NumPy's tanh on float32 CPU tensors) is torch.tanh
# ---------------------------------------------------------------------------------------------

TANH_INPUTS = torch.cat([torch.linspace(-20, 20, 4001), torch.tensor([0.0, -0.0, 1e-30, -1e-8, 88.0, -88.0,
                                                                      float("inf"), -float("inf")])])


def test_tanh_values_agree_with_torch_tanh_to_one_ulp():
    x = torch.cat([TANH_INPUTS, torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 3])
    ours, torchs = Tanh()(x), torch.tanh(x)
    assert ours.dtype == torch.float32 and ours.shape == x.shape
    ulp = torch.finfo(torch.float32).eps * torch.maximum(torchs.abs(), torch.tensor(torch.finfo(torch.float32).tiny))
    assert torch.all((ours - torchs).abs() <= ulp), "more than one unit in the last place from torch.tanh"
    assert torch.isnan(Tanh()(torch.tensor([float("nan")]))).all()
    assert torch.equal(Tanh()(torch.tensor([float("inf"), -float("inf")])), torch.tensor([1.0, -1.0]))


def test_tanh_gradient_is_torch_tanh_gradient():
    x = torch.randn(64, 7, generator=torch.Generator().manual_seed(1)) * 2
    weights = torch.randn(64, 7, generator=torch.Generator().manual_seed(2))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (Tanh()(a) * weights).sum().backward()
    (torch.tanh(b) * weights).sum().backward()
    # Near |x| = 1 ulp of tanh(x) moves 1 - tanh(x)^2 by ~1e-7 absolute: measure both against float64.
    exact = weights.double() * (1 - torch.tanh(x.double()) ** 2)
    ours_err, torch_err = (a.grad.double() - exact).abs().max(), (b.grad.double() - exact).abs().max()
    assert ours_err <= 2 * torch_err + 1e-7, (ours_err, torch_err)
    assert torch.autograd.gradcheck(Tanh(), (x[:4, :3].double().requires_grad_(),))  # float64: torch.tanh


def test_tanh_handles_views_other_dtypes_and_no_grad():
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
    strided = x.t()[::2]  # not contiguous
    torch.testing.assert_close(Tanh()(strided), torch.tanh(strided), rtol=2e-7, atol=0)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        assert torch.equal(Tanh()(x.to(dtype)), torch.tanh(x.to(dtype)))
    with torch.no_grad():
        y = Tanh()(x.requires_grad_())
    assert not y.requires_grad
    assert isinstance(Tanh(), nn.Tanh), "isinstance checks on nn.Tanh must still hold"
    net = ActorCritic(OBS_SPACE, gym.spaces.Discrete(2))
    assert all(type(m) is Tanh for m in net.modules() if isinstance(m, nn.Tanh))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")  # still used to export models
def test_tanh_under_tracers_and_transforms_is_torch_tanh():
    # NumPy cannot see through these: each must take torch.tanh, not record a constant or fail for want of storage.
    x, fresh = torch.randn(5, 4, generator=torch.Generator().manual_seed(4)), torch.randn(3, 4)
    torch.testing.assert_close(torch.func.vmap(Tanh())(x), torch.tanh(x))
    torch.testing.assert_close(torch.func.grad(lambda v: Tanh()(v).sum())(x), 1 - torch.tanh(x) ** 2)
    net = nn.Sequential(nn.Linear(4, 3), Tanh())
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(fresh), net(fresh))  # a constant recorded at trace time would differ here
    torch.testing.assert_close(torch.fx.symbolic_trace(net)(fresh), net(fresh))


def test_layer_init_and_mlp_shapes():
    layer = layer_init(nn.Linear(8, 3), std=2.0, bias=0.5)
    assert_orthogonal(layer.weight, 2.0)
    assert torch.all(layer.bias == 0.5)
    net = mlp(5, (), 2)  # no hidden layer: one linear map
    assert len(net) == 1 and net(torch.zeros(7, 5)).shape == (7, 2)
    assert mlp(5, (16, 16), 3, activation=nn.ReLU)(torch.zeros(7, 5)).shape == (7, 3)


def test_qnetwork_and_cnn_shapes():
    q = QNetwork(OBS_SPACE, gym.spaces.Discrete(6), hidden=(32,))
    assert q(torch.zeros(9, 4)).shape == (9, 6)
    assert nature_cnn(4)(torch.zeros(2, 4, 84, 84)).shape == (2, 512)
    assert obs_dim(gym.spaces.Box(0, 1, shape=(2, 3))) == 6


def test_flattened_multidimensional_box_observations():
    agent = ActorCritic(gym.spaces.Box(0, 1, shape=(2, 3)), gym.spaces.Discrete(2))
    assert agent.value(torch.zeros(5, 6)).shape == (5,)


# ---------------------------------------------------------------------------------------------
# Unsupported spaces
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [gym.spaces.MultiDiscrete([2, 3]), gym.spaces.MultiBinary(3)])
def test_actor_critic_rejects_other_action_spaces(space):
    with pytest.raises(ValueError, match="Discrete and Box action spaces"):
        ActorCritic(OBS_SPACE, space)


@pytest.mark.parametrize("make", [lambda s: ActorCritic(s, gym.spaces.Discrete(2)),
                                  lambda s: QNetwork(s, gym.spaces.Discrete(2))])
def test_non_box_observations_are_rejected_with_a_hint(make):
    with pytest.raises(ValueError, match="Box observations.*FlattenObservation"):
        make(gym.spaces.Discrete(5))


def test_qnetwork_rejects_continuous_actions():
    with pytest.raises(ValueError, match="Discrete action space"):
        QNetwork(OBS_SPACE, gym.spaces.Box(-1.0, 1.0, shape=(2,)))
