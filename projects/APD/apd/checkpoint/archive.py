"""Which tensors of a ``torch.save`` zip archive a damaged member holds, without building any object.

A CRC error names an archive member (``<archive>/data/<key>``); :func:`tensor_keys_of_record` reads the
archive's ``data.pkl`` with every global replaced by a stub that runs nothing, and names the tensors whose
storage is that member (``model/backbone.conv1.weight``), for :func:`apd.checkpoint.io.verify_zip_archive`.
"""
import io
import pickle
import zipfile
from typing import List, Mapping

__all__ = ["tensor_keys_of_record"]


class _Stub:
    """Stand-in for any global while mapping storages to keys: records its arguments, runs nothing."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args = args
        self.items = {}
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.items[len(self.items)] = value

    def extend(self, values):
        for value in values:
            self.append(value)


class _StorageRef:
    def __init__(self, key: str):
        self.key = key


class _KeyMapper(pickle.Unpickler):
    """Reads ``data.pkl`` of a torch archive with every global replaced by :class:`_Stub` (no real object
    is ever built, so nothing can run) and storages by their record names."""

    def find_class(self, module, name):
        return _Stub

    def persistent_load(self, pid):
        return _StorageRef(str(pid[2]) if isinstance(pid, tuple) and len(pid) > 2 else "?")


def tensor_keys_of_record(path: str, record: str) -> List[str]:
    """Names (``model/backbone.conv1.weight``) of the tensors whose storage is archive member ``record``
    (``<archive>/data/<key>``); [] when it cannot be told."""
    storage_key = record.rsplit("/", 1)[-1]
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            root = _KeyMapper(io.BytesIO(archive.read(pkl[0])), encoding="latin1").load()
    except Exception:  # best effort: the CRC error itself is what matters
        return []
    found: List[str] = []

    def walk(obj, name, depth=0):
        if depth > 50:
            return
        if isinstance(obj, _StorageRef):
            if obj.key == storage_key:
                found.append(name)
            return
        if isinstance(obj, _Stub):
            for arg in obj.args:
                if isinstance(arg, (_StorageRef, _Stub, tuple, list)):
                    walk(arg, name, depth + 1)
                    if found and found[-1] == name:
                        return
            for k, v in obj.items.items():
                walk(v, f"{name}/{k}" if name else str(k), depth + 1)
        elif isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(v, f"{name}/{k}" if name else str(k), depth + 1)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{name}/{i}" if name else str(i), depth + 1)

    walk(root, "")
    return found
