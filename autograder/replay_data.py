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
import dataclasses
import hashlib
import importlib
import io
import math
import sys
import types
import zlib
from functools import lru_cache
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


@lru_cache(maxsize=64)
def _dtype_str(dtype: np.dtype) -> str:
    return dtype.str


def _array_blob(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)  # any layout; np.ascontiguousarray would make a 0-d array 1-d
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
        kind = value.dtype.kind
        if kind in "biu" or (kind == "f" and math.isfinite(value)):
            return {"ns": value.item(), "dt": _dtype_str(value.dtype)}  # exact: JSON keeps a float's repr
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError("a numpy object scalar")
        return {"np0": _array_blob(value)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("a numpy array of Python objects")
        if value.size <= 64 and value.dtype.kind in "biuf":  # small (an action): JSON, no .npy header
            return {"sm": value.ravel().tolist(), "dt": _dtype_str(value.dtype), "sh": list(value.shape)}
        return {"nd": _array_blob(value)}
    if isinstance(value, _Graph):
        return dict(encode(value.tensor), grad=value.requires_grad, graph=True)
    if t is slice:
        parts = [value.start, value.stop, value.step]
        if not all(v is None or type(v) is int for v in parts):
            raise TypeError("a slice of other than whole numbers")
        return {"slice": parts}
    if t is _Fields:
        return {"obj": value.name, "fields": {k: encode(v) for k, v in value.fields.items()}}
    if t is Delta:
        return {"delta": encode(value.index), "values": encode(value.values)}
    if t is _ModuleRecord:
        return {"module": value.name, "base": value.base, "training": value.training, "attrs": encode(value.attrs),
                "params": {k: encode(v) for k, v in value.params.items()},
                "buffers": {k: encode(v) for k, v in value.buffers.items()},
                "children": {k: encode(v) for k, v in value.children.items()}}
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
    if "ns" in data:
        dtype = np.dtype(data["dt"])
        if dtype.kind not in "biuf" or not isinstance(data["ns"], (bool, int, float)):
            raise ReplayMismatch("a malformed number in the record")
        return dtype.type(data["ns"])
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
        torch = _torch()
        t = torch.from_numpy(_array_from_blob(data["pt"]).copy()).to(getattr(torch, data["dtype"]))
        if data.get("graph"):  # the values of a learner's result; its graph stayed in the kernel
            return torch.Tensor._make_subclass(_learner_result_class(), t, bool(data.get("grad"))
                                               and t.is_floating_point())
        return t.requires_grad_() if data.get("grad") and t.is_floating_point() else t
    if "slice" in data:
        parts = data["slice"]
        if not (isinstance(parts, list) and len(parts) == 3 and all(v is None or type(v) is int for v in parts)):
            raise ReplayMismatch("a malformed slice in the record")
        return slice(*parts)
    if "delta" in data:
        index, values = decode(data["delta"]), decode(data["values"])
        if not (isinstance(index, np.ndarray) and index.dtype.kind == "i" and isinstance(values, np.ndarray)
                and index.shape == values.shape and index.ndim == 1):
            raise ReplayMismatch("a malformed change of an array in the record")
        return Delta(index, values)
    if "obj" in data:
        return RecordedObject(str(data["obj"]), {k: decode(v) for k, v in data["fields"].items()})
    if "module" in data:
        return _rebuilt_module(data)
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
    if t is slice:
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
    if torch is not None and isinstance(value, torch.nn.Module):
        return _ModuleRecord.of(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a record such as rlcore's Episode
        return _Fields(t.__name__, {f.name: freeze(getattr(value, f.name)) for f in dataclasses.fields(value)})
    raise TypeError(t.__name__)


class _GeneratorState:
    """A numpy Generator's state at a crossing (encoded as the generator itself)."""

    def __init__(self, name: str, state: dict):
        self.name, self.state = name, state


class _Graph:
    """A frozen tensor that came out of an autograd graph (encoded with its mark)."""

    def __init__(self, tensor, requires_grad: bool):
        self.tensor, self.requires_grad = tensor, requires_grad


class Delta:
    """An array given as the entries that changed since the previous array in its place (the policy a learner
    hands its environment at every episode, changed in a few states): index [k] into the flattened array,
    values [k]."""

    def __init__(self, index: np.ndarray, values: np.ndarray):
        self.index, self.values = index, values

    @staticmethod
    def between(new: Any, old: Any) -> Any:
        """`new` as a Delta from `old` when both are arrays of one shape and dtype and few entries changed;
        otherwise `new` itself."""
        if not (type(new) is np.ndarray and type(old) is np.ndarray and new.shape == old.shape
                and new.dtype == old.dtype and new.size >= 64 and new.dtype.kind in "biuf"):
            return new
        index = np.flatnonzero(new != old)
        return Delta(index, new.ravel()[index]) if 4 * index.size < new.size else new

    def applied_to(self, old: Any) -> np.ndarray:
        if not isinstance(old, np.ndarray) or (self.index.size and self.index.max() >= old.size):
            raise ReplayMismatch("the record changes an array that is not there")
        new = old.copy()
        new.flat[self.index] = self.values
        return new

    @staticmethod
    def packed(args: list, last: list) -> list:
        """A call's (frozen) arguments, each array as its changes from the same place in the previous call's."""
        return [Delta.between(a, last[i]) if i < len(last) else a for i, a in enumerate(args)]

    @staticmethod
    def unpacked(args: list, last: list) -> list:
        """The arguments `packed` recorded, given the previous call's (unpacked) arguments."""
        return [a.applied_to(last[i] if i < len(last) else None) if type(a) is Delta else a
                for i, a in enumerate(args)]


class _Fields:
    """A frozen dataclass instance the learner's code returned (rlcore's Episode): its class name and fields."""

    def __init__(self, name: str, fields: dict):
        self.name, self.fields = name, fields


class RecordedObject:
    """In the grader: a record the learner's code returned (a dataclass instance), with its fields as
    attributes and nothing else. A check reads it exactly as it read the learner's object in the kernel."""

    def __init__(self, name: str, fields: dict):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, attr: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if attr in fields:
            return fields[attr]
        raise AttributeError(f"{object.__getattribute__(self, '_name')} has no attribute {attr!r}")

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError("a recorded result is read-only")

    def __repr__(self) -> str:
        return f"{self._name}({', '.join(self._fields)})"


class _ModuleRecord:
    """A frozen torch module the learner's code returned: its class name, the torch.nn class it derives from,
    its plain attributes (Linear's in_features), parameters, buffers and children; never its code."""

    _PLAIN = (bool, int, float, str, type(None))

    def __init__(self, name, base, training, attrs, params, buffers, children):
        self.name, self.base, self.training = name, base, training
        self.attrs, self.params, self.buffers, self.children = attrs, params, buffers, children

    @classmethod
    def of(cls, module) -> "_ModuleRecord":
        base = next(c for c in type(module).__mro__ if c.__module__.startswith("torch.nn"))
        attrs = {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"
                 and (type(v) in cls._PLAIN or (type(v) is tuple and all(type(x) in cls._PLAIN for x in v)))}
        return cls(type(module).__name__, f"{base.__module__}.{base.__qualname__}", bool(module.training), attrs,
                   {k: None if p is None else freeze(p) for k, p in module._parameters.items()},
                   {k: None if b is None else freeze(b) for k, b in module._buffers.items()},
                   {k: None if c is None else cls.of(c) for k, c in module._modules.items()})


def _rebuilt_module(data: dict):
    """The module `_ModuleRecord` described, rebuilt from torch.nn's own classes without running any
    constructor: a learner's own class becomes an empty subclass of its torch.nn base with the same name, so
    that isinstance() and type(m).__name__ answer as in the kernel. Its forward is never run here: calls of it
    are replayed from the record."""
    nn = _torch().nn
    path, _, name = str(data["base"]).rpartition(".")
    if not (path == "torch.nn" or path.startswith("torch.nn.")):
        raise ReplayMismatch(f"a module whose base {data['base']!r} is not a torch.nn class")
    base = getattr(importlib.import_module(path), name, None)
    if not (isinstance(base, type) and issubclass(base, nn.Module)):
        raise ReplayMismatch(f"a module whose base {data['base']!r} is not a torch.nn class")
    own = str(data["module"])
    cls = base if own == base.__name__ else type(own, (base,), {"__module__": "learner"})
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    attrs = decode(data["attrs"])
    if not isinstance(attrs, dict) or any(str(key).startswith("_") or key == "training" for key in attrs):
        raise ReplayMismatch("a module with attributes that are not its plain settings")
    for key, value in attrs.items():
        setattr(module, key, value)
    for key, value in data["params"].items():
        value = decode(value)
        module.register_parameter(key, None if value is None else
                                  nn.Parameter(value.detach(), requires_grad=value.requires_grad))
    for key, value in data["buffers"].items():
        module.register_buffer(key, decode(value))
    for key, value in data["children"].items():
        module.add_module(key, None if value is None else decode(value))
    module.training = bool(data["training"])
    return module


@lru_cache(maxsize=1)
def _learner_result_class():
    """The class of a learner's result decoded in the grader when it came out of an autograd graph in the
    kernel: its values, without the graph. Differentiating it would differentiate nothing, silently; so
    backward() and torch.autograd.grad on it (or on anything computed from it) stop the replay instead. A
    check differentiates a learner's result through Check.grad or a recorded call, whose result is recorded."""
    torch = _torch()

    class LearnerResult(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.Tensor.backward, torch.autograd.grad, torch.autograd.backward):
                raise Unverifiable("the check differentiates the learner's result itself, whose autograd graph "
                                   "only the kernel has (differentiate it through Check.grad)")
            return super().__torch_function__(func, types, args, kwargs or {})

    return LearnerResult


def _nbytes(value: Any) -> int:
    """About how many bytes `value` holds (to cap a record's size without encoding it)."""
    t = type(value)
    if t in _SCALARS:
        return 16
    if t is _Fields:
        return 16 + _nbytes(value.fields)
    if t is Delta:
        return 16 + value.index.nbytes + value.values.nbytes
    if t is _ModuleRecord:
        return 16 + sum(_nbytes(part) for part in (value.params, value.buffers, value.children))
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
