"""Plain data for the grader's replay (autograder/replay.py): values and object states as JSON, without pickle.

`freeze` copies what crosses between a check and the learner's code while the check runs (cheap); `encode`
turns the copies into JSON-able data when it ends; `decode` turns them back in the grader's process, with
np.load(allow_pickle=False), so a forged record can only supply values, never run code. `snapshot` and `restore`
take and give back the state of an object handed to learner code (an array written in place, a numpy
Generator drawn from, a network's weights and gradients, an optimizer's moments); `_fingerprint` says cheaply
whether it changed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import sys
import types
import zlib
from typing import Any

import numpy as np

_SCALARS = (type(None), bool, int, float, str)


class Unverifiable(BaseException):
    """The grader cannot replay this check (it is not deterministic, or it reaches learner code other than
    through Check.call, or an object crossed that cannot be recorded). Not the learner's fault.
    A BaseException, so that a check's own `except Exception` around learner code cannot take it for the
    learner's error."""


class ReplayMismatch(BaseException):
    """The record does not fit the check: a call or a check is missing, or there are extra ones. The kernel's
    run of the check differed from the grader's: the grader's verdict is a failure. (A BaseException, as above.)"""


# ------------------------------------------------------------------------------------ encoding values


def _array_blob(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return base64.b64encode(zlib.compress(buf.getvalue(), 1)).decode("ascii")


def _array_from_blob(blob: str) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(base64.b64decode(blob))), allow_pickle=False)


def encode(value: Any) -> Any:
    """`value` as JSON-able plain data, or raise TypeError when it is not plain data.

    Handles None, bool, int, float, str, numpy arrays and scalars (not object dtype), torch tensors (any
    dtype; bfloat16 travels as float32), and tuples, lists and dicts with string keys of those."""
    t = type(value)
    if t is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if t in _SCALARS:
        return value
    if t is list or t is tuple:
        return {"list" if t is list else "tuple": [encode(v) for v in value]}
    if isinstance(value, np.generic):
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError("a numpy object scalar")
        return {"np0": _array_blob(value)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("a numpy array of Python objects")
        if value.size <= 64 and value.dtype.kind in "biuf":  # small (an action): JSON, no .npy header
            return {"sm": value.ravel().tolist(), "dt": value.dtype.str, "sh": list(value.shape)}
        return {"nd": _array_blob(value)}
    if isinstance(value, _Graph):
        return dict(encode(value.tensor), grad=value.requires_grad, graph=True)
    if isinstance(value, _GeneratorState):
        return {"gen": value.name, "state": encode(_plain_state(value.state))}
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor) and value.device.type == "meta":
        return {"meta": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}  # shapes, no data
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        dtype = str(t.dtype).removeprefix("torch.")
        if t.dtype == torch.bfloat16:
            t = t.float()
        data = {"pt": _array_blob(t.numpy()), "dtype": dtype, "grad": bool(value.requires_grad)}
        if value.grad_fn is not None:
            data["graph"] = True  # a result of the learner's computation that a check may differentiate
        return data
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode(v) for v in value]}
    if isinstance(value, np.random.Generator):  # a learner's generator handed to a grader callback
        bits = value.bit_generator
        return {"gen": type(bits).__name__, "state": encode(_plain_state(bits.state))}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a dict with keys that are not strings")
        return {"dict": {k: encode(v) for k, v in value.items()}}
    raise TypeError(type(value).__name__)


def decode(data: Any) -> Any:
    """The value `encode` turned into `data` (a new object)."""
    if not isinstance(data, dict):
        return data
    if "f" in data:
        return float(data["f"])
    if "np0" in data:
        return _array_from_blob(data["np0"])[()]
    if "nd" in data:
        return _array_from_blob(data["nd"])
    if "sm" in data:
        return np.array(data["sm"], dtype=np.dtype(data["dt"])).reshape(data["sh"])
    if "meta" in data:
        torch = _torch()
        return torch.empty(data["meta"], dtype=getattr(torch, data["dtype"]), device="meta")
    if "pt" in data:
        if data.get("graph"):
            raise Unverifiable("the check differentiates the learner's result, whose autograd graph only the "
                               "kernel has")
        torch = _torch()
        t = torch.from_numpy(_array_from_blob(data["pt"]).copy()).to(getattr(torch, data["dtype"]))
        return t.requires_grad_() if data.get("grad") and t.is_floating_point() else t
    if "gen" in data:
        if data["gen"] not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise ReplayMismatch(f"unknown bit generator {data['gen']!r} in the record")
        bits = getattr(np.random, data["gen"])()
        bits.state = _int_keys(decode(data["state"]), numeric=False)
        return np.random.Generator(bits)
    if "list" in data:
        return [decode(v) for v in data["list"]]
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {k: decode(v) for k, v in data["dict"].items()}
    raise ReplayMismatch(f"unknown data in the record: {sorted(data)[:3]}")


def _torch():
    """torch if it is imported (a check that never uses torch does not pay for importing it)."""
    return sys.modules.get("torch")


# ---------------------------------------------------------------- the state of objects learner code can change

_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, range, type, np.generic, np.dtype)
_CALLABLES = (types.MethodType, types.FunctionType, types.BuiltinMethodType, types.BuiltinFunctionType)


def _kind(obj: Any) -> str | None:
    """How a grader object handed to learner code is followed.

    None: it cannot change (numbers, strings, classes). A data kind ("ndarray", "list", "dict", "tuple",
    "tensor", "generator", "stateful" for a network or an optimizer): its state is snapshotted after the call
    when it changed. "proxy": anything else (a function, an environment, a callback object): learner code gets
    a proxy that records every method call and attribute write, which the grader's replay performs again on
    its own object, so the object's state there comes from the grader's own code."""
    if isinstance(obj, _IMMUTABLE):
        return None
    if type(obj) in _CALLABLES:  # a method or a function (the common case: env.step)
        return "proxy"
    if isinstance(obj, np.random.Generator):
        return "generator"
    if isinstance(obj, (np.ndarray, list, dict)):
        return type(obj).__name__
    if isinstance(obj, tuple):
        kinds = {_kind(v) for v in obj} - {None}
        if "proxy" in kinds:
            raise Unverifiable("the check hands learner code a tuple holding an object it cannot record")
        return "tuple" if kinds else None
    torch = _torch()
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            return "tensor"
        if isinstance(obj, (torch.nn.Module, torch.optim.Optimizer)):
            return "stateful"
    return "proxy"


def snapshot(obj: Any, kind: str) -> Any:
    """The state of `obj`, copied into plain data (arrays, tensors, lists, dicts: what `encode` takes). Copies,
    not encodings: encoding waits until the check ends, so recording costs learner code little time."""
    if kind == "generator":
        return _plain_state(obj.bit_generator.state)
    if kind == "tensor":
        return {"data": obj.detach().clone(), "grad": None if obj.grad is None else obj.grad.detach().clone()}
    if kind == "stateful":
        if hasattr(obj, "named_parameters"):  # a module: weights, buffers and the gradients the learner left
            return {"state": {k: v.detach().clone() for k, v in obj.state_dict().items()},
                    "grads": {name: None if p.grad is None else p.grad.detach().clone()
                              for name, p in obj.named_parameters()}}
        return {"optimizer": _plain_state(_cloned(obj.state_dict()))}
    if kind == "tuple":
        return [None if _kind(v) is None else snapshot(v, _kind(v)) for v in obj]
    return freeze(obj)


def restore(obj: Any, kind: str, data: Any) -> None:
    """Give `obj` the state `snapshot` took (decoded), in place."""
    if kind == "generator":
        obj.bit_generator.state = _int_keys(data, numeric=False)
    elif kind == "ndarray":
        value = np.asarray(data)
        if value.shape != obj.shape:
            raise ReplayMismatch("an array changed shape in place")
        obj[...] = value
    elif kind == "tensor":
        _assign(obj, data["data"])
        obj.grad = None if data["grad"] is None else data["grad"].detach().to(obj.dtype)
    elif kind == "stateful" and "optimizer" in data:
        obj.load_state_dict(_int_keys(data["optimizer"]))
    elif kind == "stateful":
        state = obj.state_dict()
        for name, value in data["state"].items():
            if name not in state:
                raise ReplayMismatch(f"the record has a parameter {name!r} the network does not")
            _assign(state[name], value)
        for name, p in obj.named_parameters():
            g = data["grads"].get(name)
            p.grad = None if g is None else g.detach().to(p.dtype)
    elif kind == "list":
        obj[:] = data
    elif kind == "dict":
        obj.clear()
        obj.update(data)
    elif kind == "tuple":
        for item, part in zip(obj, data):
            if part is not None:
                restore(item, _kind(item), part)


def freeze(value: Any) -> Any:
    """A copy of plain data that later changes cannot reach (encoded when the check ends); TypeError when
    `value` is not plain data (what `encode` takes). Runs at every crossing: the common cases come first."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is np.ndarray or isinstance(value, np.generic):
        if value.dtype == object:
            raise TypeError("a numpy array of Python objects")
        return value.copy()
    if t is list or t is tuple:
        return t(freeze(v) for v in value)
    if t is dict:
        if not all(type(k) is str for k in value):
            raise TypeError("a dict with keys that are not strings")
        return {k: freeze(v) for k, v in value.items()}
    if isinstance(value, np.random.Generator):  # its state now (a fresh dict), encoded later
        return _GeneratorState(type(value.bit_generator).__name__, value.bit_generator.state)
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        if value.grad_fn is not None:  # keep the mark: the replay must know the check cannot differentiate it
            return _Graph(value.detach().clone(), value.requires_grad)
        copy = value.detach().clone()
        return copy.requires_grad_(value.requires_grad) if value.is_floating_point() else copy
    if isinstance(value, (list, tuple)):
        return type(value)(freeze(v) for v in value)
    raise TypeError(t.__name__)


class _GeneratorState:
    """A numpy Generator's state at a crossing (encoded as the generator itself)."""

    def __init__(self, name: str, state: dict):
        self.name, self.state = name, state


class _Graph:
    """A frozen tensor that came out of an autograd graph (encoded with its mark)."""

    def __init__(self, tensor, requires_grad: bool):
        self.tensor, self.requires_grad = tensor, requires_grad


def _nbytes(value: Any) -> int:
    """About how many bytes `value` holds (to cap a record's size without encoding it)."""
    t = type(value)
    if t in _SCALARS:
        return 16
    if t is np.ndarray:
        return value.nbytes
    if t is list or t is tuple:
        return 16 + sum(_nbytes(v) for v in value)
    if isinstance(value, _Graph):
        value = value.tensor
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return 16 + sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return 16 + sum(len(k) + _nbytes(v) for k, v in value.items())
    return 16


def _cloned(value: Any) -> Any:
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cloned(v) for v in value)
    return value


def _assign(tensor, value) -> None:
    """Write `value` into `tensor` only where it differs: an in-place write bumps the tensor's version, which
    would invalidate an autograd graph the grader's check built on it, though nothing changed."""
    torch = _torch()
    if tensor.device.type == "meta":
        return  # a meta tensor has no values
    value = value.to(tensor.dtype)
    if value.shape != tensor.shape:
        raise ReplayMismatch("a tensor changed shape in place")
    if not torch.equal(tensor.detach(), value):
        with torch.no_grad():
            tensor.copy_(value)


def _fingerprint(obj: Any, kind: str) -> str:
    """A cheap digest of a state (its raw bytes, nothing encoded), to snapshot only what changed."""
    h = hashlib.blake2b(digest_size=16)
    if kind == "stateful" and hasattr(obj, "named_parameters"):
        _feed(h, obj.state_dict())
        _feed(h, {name: p.grad for name, p in obj.named_parameters()})
    elif kind == "stateful":
        _feed(h, obj.state_dict())
    elif kind == "generator":
        h.update(repr(obj.bit_generator.state).encode())
    elif kind == "tensor":
        _feed(h, obj)
        _feed(h, obj.grad)
    else:
        _feed(h, obj)
    return h.hexdigest()


def _feed(h, value: Any) -> None:
    """Hash `value` into h: arrays and tensors by their bytes, containers item by item."""
    torch = _torch()
    if isinstance(value, np.ndarray) and value.dtype != object:
        h.update(repr((value.shape, value.dtype.str)).encode())
        h.update(np.ascontiguousarray(value).view(np.uint8).data if value.size else b"")
    elif torch is not None and isinstance(value, torch.Tensor) and value.device.type == "meta":
        h.update(repr((tuple(value.shape), str(value.dtype), "meta")).encode())  # no values to read
    elif torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(repr((tuple(t.shape), str(t.dtype))).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for k in value:
            h.update(repr(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _feed(h, v)
    else:
        h.update(repr(value).encode())


def _plain_state(value: Any) -> Any:
    """A state dict with int keys (an optimizer's) or nested dicts as string-keyed plain data."""
    if isinstance(value, dict):
        return {str(k): _plain_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_state(v) for v in value)
    return value


def _int_keys(value: Any, numeric: bool = True) -> Any:
    """A state dict back from string keys (an optimizer's `state` is keyed by parameter index)."""
    if isinstance(value, dict):
        return {(int(k) if numeric and k.isdigit() else k): _int_keys(v, numeric) for k, v in value.items()}
    if isinstance(value, list):
        return [_int_keys(v, numeric) for v in value]
    return value
