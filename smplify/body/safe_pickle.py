"""Restricted unpickling for official SMPL-family ``.pkl`` files.

Official SMPL/SMPL-H/SMPL-X pickles hold ``chumpy`` arrays and ``scipy.sparse``
matrices. chumpy does not import on modern Python, and a pickle may name any
callable, so we never use ``pickle.load``: every global the file names must be in
an allow-list, chumpy classes are mapped to a small stand-in that keeps the array
(``x``) it carries, and anything else is refused with :class:`UnsafePickleError`.
"""
from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that is not on the allow-list."""


class PickleReadError(pickle.UnpicklingError):
    """The file is not a (complete) pickle: empty, truncated or garbage."""


class _ChumpyStandIn:
    """Stands in for any chumpy object; keeps its state (``x`` is the array)."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_state"] = {}

    def __setstate__(self, state):
        self.__dict__["_state"] = state if isinstance(state, dict) else {"x": state}

    def to_array(self) -> np.ndarray:
        s = self.__dict__["_state"]
        if "x" in s:
            return np.asarray(s["x"])
        for key in ("a", "r"):
            if key in s:
                return np.asarray(s[key])
        raise UnsafePickleError("chumpy object without array data")


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    ("numpy", "dtype"),
    ("scipy.sparse.csc", "csc_matrix"),
    ("scipy.sparse.csr", "csr_matrix"),
    ("scipy.sparse._csc", "csc_matrix"),
    ("scipy.sparse._csr", "csr_matrix"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        if (module, name) in _SAFE_GLOBALS:
            if module in ("copy_reg", "__builtin__"):
                module = {"copy_reg": "copyreg", "__builtin__": "builtins"}[module]
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load global {module}.{name} from a model pickle")


def _plain(value: Any) -> Any:
    if isinstance(value, _ChumpyStandIn):
        return value.to_array()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def safe_load_pickle(path) -> dict:
    """Load a SMPL-family pickle into a dict of numpy arrays / scipy sparse matrices.

    Raises :class:`UnsafePickleError` if the file names any global outside the
    allow-list (e.g. ``os.system``); such a file is never executed. An empty, truncated or
    garbage file raises :class:`PickleReadError` naming the file and the reason in one line.
    """
    with open(path, "rb") as fh:
        try:
            data = _RestrictedUnpickler(fh, encoding="latin1").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except EOFError:
            what = "empty file" if fh.tell() == 0 else "file ends early (truncated download?)"
            raise PickleReadError(f"{path}: not a complete pickle ({what})") from None
        except (pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                struct.error, UnicodeDecodeError, MemoryError, OverflowError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PickleReadError(f"{path}: not a readable model pickle ({type(exc).__name__}: {reason[:200]})") from None
    if not isinstance(data, dict):
        raise UnsafePickleError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    return _plain(data)
