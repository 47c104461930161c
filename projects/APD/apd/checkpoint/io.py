"""The one reader of checkpoint files: teacher weights, ``train.init_checkpoint``, ``--resume``, converters
and tools all come through :func:`load_checkpoint`.

A checkpoint file is untrusted input. Reading one must not run code, and a damaged or poisoned file must
be refused with one line that names the file and what is wrong, before any of it reaches a model:

- ``.pkl`` (Detectron2 model zoo: ``{"model": {name: ndarray}, "__author__": ..., "matching_heuristics":
  ...}``) is unpickled by :class:`RestrictedUnpickler`, which resolves only the globals numpy needs to
  rebuild arrays, dtypes and scalars (numpy 1.x ``numpy.core`` and 2.x ``numpy._core`` paths),
  ``collections.OrderedDict`` and ``_codecs.encode`` (bytes in protocol-2 pickles). Any other global
  (``os.system``, ``builtins.exec``, ``subprocess.Popen``, a class) is refused before it is called.
- ``.pth``/``.pt``/other: ``torch.load(weights_only=True)``. A zip archive (``torch.save``'s format,
  whatever the file name) first has the CRC-32 of every member checked: torch itself reads a member
  whose bytes were damaged without noticing.
- Every floating tensor and array in the loaded object must be finite: one NaN/inf in a teacher, an
  init checkpoint or a resumed run poisons every later step.

``allow_pickle=True`` (the converters' ``--allow-pickle``) lifts the restriction on Python objects for
files the user trusts; the archive and finiteness checks still apply.

:func:`unwrap_state_dict` then finds the flat ``{name: tensor}`` dict inside a checkpoint container:
the first of :data:`CONTAINER_KEYS` that holds a mapping (Detectron2's own ``model`` first), numpy arrays
as tensors, a DDP ``module.`` prefix stripped when every key has it.
"""
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import torch

from ..errors import MissingFileError, UserError
from .archive import tensor_keys_of_record
from .keys import format_keys, without_ddp_prefix

__all__ = [
    "CONTAINER_KEYS", "CheckpointError", "CorruptCheckpointError", "NonFiniteCheckpointError", "RestrictedUnpickler",
    "UnsafeCheckpointError", "check_finite", "find_non_finite", "load_checkpoint", "read_state_dict",
    "unwrap_state_dict", "verify_zip_archive",
]

logger = logging.getLogger(__name__)

# Where a checkpoint keeps its state dict, in the order they are looked up: Detectron2 / this project
# ({"model", "trainer", "iteration"}), then the official APD / semseg / mmseg files ({"epoch",
# "state_dict", "optimizer"}), then other trainers' names.
CONTAINER_KEYS = ("model", "state_dict", "model_state_dict", "model_state")


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used: unreadable, unsafe, damaged or poisoned (the message names it)."""


class UnsafeCheckpointError(CheckpointError):
    """Reading the file would construct Python objects outside the allow-list (i.e. could run code)."""


class CorruptCheckpointError(CheckpointError):
    """The file is empty, truncated, not a checkpoint, or its archive fails the CRC check."""


class NonFiniteCheckpointError(CheckpointError):
    """The checkpoint holds (or would hold) NaN/inf values; the message names the tensors."""


# ------------------------------------------------------------------------------ restricted unpickling
class _Refused(Exception):
    """Raised inside the unpickler; :meth:`RestrictedUnpickler.load` adds the file name."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin1 only: no codec lookup)."""
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"it calls _codecs.encode with the encoding {encoding!r} (only latin1 is allowed)")
    return text.encode("latin1")


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    from numpy._core import multiarray, numeric  # numpy >= 2 (pyproject.toml)

    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    # numpy 1.x pickles name numpy.core.*, numpy 2.x numpy._core.*; both resolve to the installed numpy 2.
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, strings, numbers and numpy arrays/dtypes/scalars only.

    ``find_class`` resolves a global only when it is on the allow-list, so a pickle that names
    ``os.system`` (or any other callable) is refused before anything is called.
    """

    def __init__(self, file, *, source: str = "<checkpoint>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafeCheckpointError(
                f"Refusing to load '{self.source}': it needs the Python global '{module}.{name}', which a "
                "checkpoint of dicts, lists, strings, numbers and numpy arrays never needs (loading it could run "
                "code). Re-save the weights as a state dict of tensors from a trusted environment."
            )
        return obj

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(f"Refusing to load '{self.source}': it uses pickle persistent ids")

    def load(self):
        try:
            return super().load()
        except _Refused as e:
            raise UnsafeCheckpointError(f"Refusing to load '{self.source}': {e}") from None


# ------------------------------------------------------------------------------ archive check
def verify_zip_archive(path: str) -> None:
    """Check the CRC-32 of every member of ``torch.save``'s zip archive ``path``.

    Raises:
        CorruptCheckpointError: a member's bytes do not match its CRC (naming the member and, where it
            can be told, the tensors stored in it, :func:`apd.checkpoint.archive.tensor_keys_of_record`), or
            the archive is truncated.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise CorruptCheckpointError(
            f"Checkpoint '{path}' is a damaged zip archive (truncated or overwritten?): {e}") from None
    if bad is None:
        return
    keys = tensor_keys_of_record(path, bad)
    what = f" (tensor {format_keys(keys, 5)})" if keys else ""
    raise CorruptCheckpointError(
        f"Checkpoint '{path}' is corrupt: archive member '{bad}'{what} fails its CRC-32 check; the file was "
        "damaged after it was written. Use another copy or an earlier checkpoint."
    )


# ------------------------------------------------------------------------------ finiteness
def find_non_finite(obj: Any, prefix: str = "", limit: int = 10_000) -> List[str]:
    """Names (``model/backbone.bn1.running_var``) of the floating tensors / arrays in ``obj`` (nested
    dicts, lists, tuples) that hold NaN or inf, each with its count, e.g. ``"... (3 inf)"``."""
    found: List[str] = []

    def describe(name: str, nan: int, inf: int) -> str:
        parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} inf"] if inf else [])
        return f"{name or '<root>'} ({', '.join(parts)})"

    def walk(value, name):
        if len(found) >= limit:
            return
        if isinstance(value, torch.Tensor):
            if (value.is_floating_point() or value.is_complex()) and value.numel():
                finite = torch.isfinite(value)
                if not bool(finite.all()):
                    nan = int(torch.isnan(value).sum())
                    found.append(describe(name, nan, int((~finite).sum()) - nan))
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "fc" and value.size:
                finite = np.isfinite(value)
                if not finite.all():
                    nan = int(np.isnan(value).sum())
                    found.append(describe(name, nan, int((~finite).sum()) - nan))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{name}/{k}" if name else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{name}/{i}" if name else str(i))

    walk(obj, prefix)
    return found


def check_finite(obj: Any, source: str, action: str = "Refusing to load", note: str = "") -> None:
    """Raise :class:`NonFiniteCheckpointError` naming every NaN/inf tensor or array of ``obj`` (plain
    Python floats, such as logged loss values, are not weights and are not checked)."""
    bad = find_non_finite(obj)
    if bad:
        raise NonFiniteCheckpointError(
            f"{action} '{source}': {len(bad)} tensors hold NaN/inf values: {format_keys(bad, 10)}{note}")


# ------------------------------------------------------------------------------ loading
def _torch_error_line(e: BaseException) -> str:
    """The informative line of torch.load's (long, multi-line) error."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it needs the Python global '{found.group(1)}'"
    for line in text.splitlines():
        if "Unsupported operand" in line:
            return line.strip()
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(e).__name__}: {first}"


def load_checkpoint(path: str, *, allow_pickle: bool = False, check_values: bool = True) -> Any:
    """Load checkpoint ``path`` on CPU, safely and verified (see the module docstring).

    Args:
        path: a local file (``.pkl``: restricted unpickling; anything else: ``torch.load(weights_only=True)``;
            a zip archive is recognised by its content).
        allow_pickle: trust the file: plain ``pickle`` / ``weights_only=False``.
        check_values: refuse NaN/inf tensors (:class:`NonFiniteCheckpointError`).
    Returns:
        the loaded object (usually a dict).
    Raises:
        FileNotFoundError: no such path.
        UnsafeCheckpointError, CorruptCheckpointError, NonFiniteCheckpointError: one line naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"Checkpoint not found: '{path}'")
    if os.path.isdir(path):
        raise CorruptCheckpointError(f"Checkpoint '{path}' is a directory, not a checkpoint file")
    size = os.path.getsize(path)
    if size == 0:
        raise CorruptCheckpointError(f"Checkpoint '{path}' is empty (0 bytes): an interrupted copy or save?")
    if path.endswith(".safetensors"):
        raise CorruptCheckpointError(
            f"Checkpoint '{path}' is a safetensors file, which this project does not read; convert it to a "
            "torch state dict (safetensors.torch.load_file, then torch.save) first")
    with open(path, "rb") as f:
        magic = f.read(4)
    is_zip = magic == b"PK\x03\x04"
    try:
        if is_zip:
            verify_zip_archive(path)
        if path.endswith(".pkl") and not is_zip:  # latin1: Python 2 model-zoo files
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1") if allow_pickle else RestrictedUnpickler(
                    f, source=path, encoding="latin1").load()
        else:
            data = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        line = _torch_error_line(e)
        if line.startswith("it needs"):
            raise UnsafeCheckpointError(
                f"Refusing to load '{path}': it holds Python objects other than tensors and containers "
                f"({line}). Save `model.state_dict()` instead of the module, or pass --allow-pickle to a "
                "converter for a file you trust."
            ) from None
        raise CorruptCheckpointError(
            f"Cannot read checkpoint '{path}' ({size} bytes; truncated, or not a torch.save or pickle file): {line}"
        ) from None
    except (EOFError, RuntimeError, ValueError, AttributeError, ImportError, IndexError, KeyError,
            TypeError, OSError, zipfile.BadZipFile, UnicodeDecodeError, MemoryError) as e:
        hint = " (truncated?)" if isinstance(e, EOFError) or "central directory" in str(e) else ""
        raise CorruptCheckpointError(
            f"Cannot read checkpoint '{path}' ({size} bytes){hint}: {_torch_error_line(e)}") from None
    if check_values:
        check_finite(data, path)
    return data


def _as_tensor(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            return value
        if not value.flags.writeable or not value.flags.c_contiguous:
            value = np.array(value, copy=True, order="C")  # keeps 0-d arrays 0-d
        return torch.from_numpy(value)
    return value


def unwrap_state_dict(checkpoint: Any, source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` dict inside a checkpoint.

    Descends into the first of :data:`CONTAINER_KEYS` (``model``, ``state_dict``, ``model_state_dict``,
    ``model_state``) that holds a mapping, turns numpy arrays into tensors, and strips a ``module.``
    prefix (DDP / DataParallel) when every key has it.

    Raises:
        CheckpointError: not a mapping, a value that is not a tensor (all listed), or no tensors at all.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"'{source}' holds a {type(checkpoint).__name__}, not a state dict")
    containers = [k for k in CONTAINER_KEYS if isinstance(checkpoint.get(k), Mapping)]
    if containers:
        if len(containers) > 1:
            logger.warning(f"'{source}' has several state dicts ({containers}); reading '{containers[0]}'")
        checkpoint = checkpoint[containers[0]]
    state: Dict[str, torch.Tensor] = {}
    bad = []
    for name, value in checkpoint.items():
        value = _as_tensor(value)
        if not isinstance(value, torch.Tensor):
            bad.append(f"{name} ({type(value).__name__})")
            continue
        state[str(name)] = value
    if bad:
        raise CheckpointError(f"The state dict in '{source}' holds values that are not tensors: {format_keys(bad, 40)}")
    if not state:
        raise CheckpointError(f"'{source}' holds no tensors")
    return dict(without_ddp_prefix(state))


def read_state_dict(path: str, *, allow_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """:func:`unwrap_state_dict` of :func:`load_checkpoint` ``(path)``."""
    return unwrap_state_dict(load_checkpoint(path, allow_pickle=allow_pickle), source=path)
