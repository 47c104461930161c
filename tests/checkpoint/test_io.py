"""The one checkpoint reader (apd.checkpoint.io): crafted pickles are refused without running anything,
damaged archives and NaN/inf tensors are refused naming the file and the tensor, and every entry point
(teacher weights, init/resume through AtomicCheckpointer, converters, export) reads through it.
"""
import builtins
import os
import pickle
import struct
import subprocess
import zipfile
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from apd.checkpoint import AtomicCheckpointer
from apd.checkpoint import io as checkpoint_io
from apd.checkpoint.io import (
    CheckpointError,
    CorruptCheckpointError,
    NonFiniteCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    unwrap_state_dict,
)
from apd.modeling.meta_arch.teacher import TeacherWeightsError, load_teacher_weights, read_state_dict


def small_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


# ------------------------------------------------------------------------------- crafted pickles
class _Payload:
    """Unpickling this object calls ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


def _write_pickle(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess.call"])
def test_crafted_pkl_is_refused_by_every_reader_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[kind]
    fn = payload.fn
    forbidden = f"{fn.__module__}.{fn.__name__}"  # e.g. posix.system
    arrays = {k: v.numpy() for k, v in small_model().state_dict().items()}
    path = _write_pickle(tmp_path / "model_final.pkl", {"model": dict(arrays, evil=payload), "__author__": "zoo"})

    readers = {
        "load_checkpoint": lambda: load_checkpoint(path),
        "teacher weights": lambda: load_teacher_weights(small_model(), path),
        "init_checkpoint / --resume": lambda: AtomicCheckpointer(small_model()).load(path),
    }
    for name, read in readers.items():
        with pytest.raises((UnsafeCheckpointError, TeacherWeightsError)) as err:
            read()
        message = str(err.value)
        assert "\n" not in message, name
        assert path in message and f"'{forbidden}'" in message, (name, message)
        assert not marker.exists(), f"{name}: unpickling ran {forbidden}"


@pytest.mark.parametrize("numpy_path", ["numpy._core", "numpy.core"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_detectron2_model_zoo_pkl_still_loads(tmp_path, numpy_path, protocol):
    """The model-zoo layout (numpy 1.x pickles name numpy.core, 2.x numpy._core) loads through the
    restricted unpickler into the checkpointer and as teacher weights."""
    source = small_model(seed=3)
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}
    data = {"model": arrays, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    blob = pickle.dumps(data, protocol=protocol)
    other = "numpy.core" if numpy_path == "numpy._core" else "numpy._core"
    if protocol == 2:  # GLOBAL opcodes are "module\nname\n" text: rewrite the module path
        blob = blob.replace(f"{other}.".encode(), f"{numpy_path}.".encode())
        assert f"c{numpy_path}.multiarray\n_reconstruct".encode() in blob
    path = tmp_path / "model_final.pkl"
    path.write_bytes(blob)

    assert load_checkpoint(str(path))["__author__"] == "Detectron2 Model Zoo"
    target = small_model(seed=9)
    AtomicCheckpointer(target).load(str(path))
    teacher = small_model(seed=8)
    load_teacher_weights(teacher, str(path))
    for model in (target, teacher):
        for k, v in source.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), k
    assert read_state_dict(str(path))["1.num_batches_tracked"].shape == ()  # 0-d stays 0-d


def test_protocol_2_bytes_and_pycls_pyth_load_through_the_checkpointer(tmp_path):
    """Python 3 pickles bytes at protocol 2 as ``_codecs.encode(text, 'latin1')``; pycls ``.pyth`` files keep
    their weights under ``model_state``."""
    path = _write_pickle(tmp_path / "bytes.pkl", {"model": {"a": np.ones(2)}, "__author__": b"zoo"}, protocol=2)
    assert b"_codecs\nencode" in open(path, "rb").read()
    assert load_checkpoint(path)["__author__"] == b"zoo"
    other_codec = tmp_path / "codec.pkl"  # _codecs.encode("abc", "zlib"): a codec lookup, refused
    other_codec.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(UnsafeCheckpointError, match=r"codec\.pkl'.*'zlib'"):
        load_checkpoint(str(other_codec))
    source = small_model(seed=11)
    pyth = str(tmp_path / "model.pyth")
    torch.save({"model_state": source.state_dict(), "epoch": 3}, pyth)
    target = small_model(seed=12)
    AtomicCheckpointer(target).load(pyth)
    assert torch.equal(target[0].weight, source[0].weight)


# ------------------------------------------------------------------------------- damaged archives
def _member_data_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def overwrite_member(path, key: str, data: bytes = None, fix_crc: bool = False) -> str:
    """Overwrite the bytes of the archive member holding tensor ``key`` of ``{"model": ...}`` in place
    (zeros by default); with ``fix_crc`` also rewrite its CRC-32 so that the archive stays valid."""
    state = torch.load(path, weights_only=True)["model"]
    order = list(state)  # torch.save numbers storages in the order it meets them
    with zipfile.ZipFile(path) as archive:
        members = sorted((i for i in archive.infolist() if "/data/" in i.filename),
                         key=lambda i: int(i.filename.rsplit("/", 1)[1]))
    info = members[order.index(key)]
    raw = bytearray(open(path, "rb").read())
    start = _member_data_offset(raw, info)
    data = bytes(info.file_size) if data is None else data
    assert len(data) == info.file_size
    raw[start:start + len(data)] = data
    if fix_crc:
        crc = struct.pack("<I", zlib.crc32(data))
        raw[info.header_offset + 14:info.header_offset + 18] = crc
        name = info.filename.encode()
        central = raw.find(b"PK\x01\x02")  # central directory entries
        while central != -1:
            name_len = struct.unpack("<H", raw[central + 28:central + 30])[0]
            if bytes(raw[central + 46:central + 46 + name_len]) == name:
                raw[central + 16:central + 20] = crc
                break
            central = raw.find(b"PK\x01\x02", central + 4)
    with open(path, "wb") as f:
        f.write(raw)
    return info.filename


def _saved_checkpoint(tmp_path, name="model_0000009"):
    model = small_model()
    AtomicCheckpointer(model, str(tmp_path)).save(name)
    return str(tmp_path / f"{name}.pth"), model


def test_zeroed_tensor_bytes_fail_the_crc_check_naming_file_member_and_key(tmp_path):
    path, model = _saved_checkpoint(tmp_path)
    member = overwrite_member(path, "0.weight")
    # the fault: torch reads the damaged member without complaint
    assert torch.load(path, weights_only=True)["model"]["0.weight"].abs().sum() == 0
    for read in (lambda: load_checkpoint(path), lambda: AtomicCheckpointer(small_model()).load(path),
                 lambda: read_state_dict(path)):
        with pytest.raises((CorruptCheckpointError, TeacherWeightsError)) as err:
            read()
        message = str(err.value)
        assert "\n" not in message
        assert path in message and member in message and "model/0.weight" in message and "CRC" in message


def test_nan_and_inf_tensors_are_refused_naming_file_and_keys(tmp_path):
    path, model = _saved_checkpoint(tmp_path)
    var = model[1].running_var
    overwrite_member(path, "1.running_var",
                     torch.tensor([float("inf")] + [1.0] * (var.numel() - 1)).numpy().tobytes(), fix_crc=True)
    bias = model[0].bias
    overwrite_member(path, "0.bias", torch.full_like(bias, float("nan")).numpy().tobytes(), fix_crc=True)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # a valid archive: only the values are poisoned
    with pytest.raises(NonFiniteCheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and path in message
    assert "model/0.bias (4 NaN)" in message and "model/1.running_var (1 inf)" in message
    fresh = small_model(seed=4)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(NonFiniteCheckpointError):
        AtomicCheckpointer(fresh).load(path)  # --resume / init_checkpoint
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    with pytest.raises(TeacherWeightsError, match=r"model/1\.running_var"):
        load_teacher_weights(small_model(), path)


# ------------------------------------------------------------------------------- other bad files
def _bad_files(tmp_path):
    good, _ = _saved_checkpoint(tmp_path)
    raw = open(good, "rb").read()
    files = {}
    files["empty"] = tmp_path / "empty.pth"
    files["empty"].write_bytes(b"")
    files["truncated zip"] = tmp_path / "truncated.pth"
    files["truncated zip"].write_bytes(raw[: len(raw) // 2])
    pkl = pickle.dumps({"model": {"a": np.ones(100, np.float32)}, "__author__": "zoo"})
    files["truncated pkl"] = tmp_path / "truncated.pkl"
    files["truncated pkl"].write_bytes(pkl[: len(pkl) // 2])
    files["text"] = tmp_path / "notes.pth"
    files["text"].write_text("not a checkpoint\n")
    files["directory"] = tmp_path / "folder.pth"
    files["directory"].mkdir()
    files["safetensors"] = tmp_path / "model.safetensors"
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    files["safetensors"].write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    files["whole nn.Module"] = tmp_path / "module.pth"
    torch.save(small_model(), files["whole nn.Module"])
    return files


def test_empty_truncated_text_directory_safetensors_and_pickled_module_are_one_line_errors(tmp_path):
    expected = {
        "empty": ("empty (0 bytes)", CorruptCheckpointError),
        "truncated zip": ("damaged zip archive", CorruptCheckpointError),
        "truncated pkl": ("truncated", CorruptCheckpointError),
        "text": ("Cannot read checkpoint", CorruptCheckpointError),
        "directory": ("is a directory", CorruptCheckpointError),
        "safetensors": ("safetensors file", CorruptCheckpointError),
        "whole nn.Module": ("'torch.nn.modules.container.Sequential'", UnsafeCheckpointError),
    }
    for name, path in _bad_files(tmp_path).items():
        words, kind = expected[name]
        path = str(path)
        for reader in (load_checkpoint, lambda p: AtomicCheckpointer(small_model()).load(p)):
            with pytest.raises(CheckpointError) as err:
                reader(path)
            if reader is load_checkpoint:
                assert isinstance(err.value, kind), (name, err.value)
            message = str(err.value)
            assert "\n" not in message and path in message, (name, message)
            assert words in message, (name, message)
        with pytest.raises(TeacherWeightsError, match="model.teacher_weights"):
            read_state_dict(path)


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        AtomicCheckpointer(small_model()).load(str(tmp_path / "nothing.pth"))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))


# ------------------------------------------------------------------------------- one reader
def test_all_readers_pick_the_same_state_dict_from_a_container(tmp_path):
    """Teacher loading and the converters used to search the container keys in different orders:
    a file with both ``model`` and ``state_dict`` gave the teacher one and the converters the other."""
    a, b = small_model(seed=1).state_dict(), small_model(seed=2).state_dict()
    path = str(tmp_path / "both.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in a.items()}, "model": b}, path)
    teacher = read_state_dict(path)
    converted = unwrap_state_dict(load_checkpoint(path))
    shared = checkpoint_io.read_state_dict(path)
    for state in (teacher, converted, shared):
        assert set(state) == set(b) and all(torch.equal(state[k], b[k]) for k in b)
    assert checkpoint_io.CONTAINER_KEYS == ("model", "state_dict", "model_state_dict", "model_state")
    with pytest.raises(CheckpointError, match=r"b \(str\)"):
        unwrap_state_dict({"a": torch.ones(1), "b": "text"})


def test_torch_archive_named_pkl_loads(tmp_path):
    """A torch.save file is recognised by its content, not by its name."""
    model = small_model(seed=5)
    path = str(tmp_path / "teacher.pkl")
    torch.save({"model": model.state_dict()}, path)
    teacher, init = small_model(seed=6), small_model(seed=7)
    load_teacher_weights(teacher, path)
    AtomicCheckpointer(init).load(path)
    for loaded in (teacher, init):
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------- saving
def test_save_refuses_non_finite_state_and_keeps_last_checkpoint(tmp_path):
    model = small_model()
    checkpointer = AtomicCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000000")
    good = open(tmp_path / "model_0000000.pth", "rb").read()
    with torch.no_grad():
        model[1].running_var[2] = float("inf")
        model[3].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteCheckpointError) as err:
        checkpointer.save("model_0000001")
    message = str(err.value)
    assert "\n" not in message and "model_0000001.pth" in message
    assert "model/1.running_var (1 inf)" in message and "model/3.weight (1 NaN)" in message
    assert "last_checkpoint still names model_0000000.pth" in message
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000000.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000000.pth"
    assert open(tmp_path / "model_0000000.pth", "rb").read() == good
    # optimiser state is checked too
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.state[model[0].weight]["momentum_buffer"] = torch.full_like(model[0].weight, float("inf"))
    with pytest.raises(NonFiniteCheckpointError, match=r"optimizer/state/0/momentum_buffer"):
        AtomicCheckpointer(model, str(tmp_path / "other"), optimizer=optimizer).save("model_0000000")
    assert not (tmp_path / "other" / "model_0000000.pth").exists()


def test_unwrap_state_dict_containers_and_module_prefix():
    t = torch.ones(2)
    assert unwrap_state_dict({"epoch": 3, "state_dict": {"module.a.weight": t}, "optimizer": {}}) == {"a.weight": t}
    assert unwrap_state_dict({"model_state_dict": {"a.weight": t}}) == {"a.weight": t}
    # a partial module. prefix is kept (then reported as unmapped by the converters)
    assert set(unwrap_state_dict({"module.a": t, "b": t})) == {"module.a", "b"}
    with pytest.raises(CheckpointError, match=r"b \(str\)"):
        unwrap_state_dict({"a": t, "b": "text"})
