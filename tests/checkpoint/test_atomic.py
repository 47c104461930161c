import os

import pytest
import torch
from torch import nn

from apd.checkpoint import AtomicCheckpointer


def test_interrupted_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model = nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000009")
    good = torch.load(tmp_path / "model_0000009.pth", weights_only=True)

    def dying_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000009")  # same name: must not clobber the good file
    monkeypatch.undo()
    again = torch.load(tmp_path / "model_0000009.pth", weights_only=True)
    torch.testing.assert_close(again["model"], good["model"])
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_the_permissions_open_would_give(tmp_path, umask):
    """mkstemp's temporary file is 0600; the renamed checkpoint must not keep that (a group that may read
    the run folder could not read its checkpoints)."""
    from apd.checkpoint.atomic import atomic_torch_save, atomic_write_text

    old = os.umask(umask)
    try:
        atomic_torch_save({"w": torch.zeros(1)}, str(tmp_path / "a.pth"))
        atomic_write_text(str(tmp_path / "last_checkpoint"), "a.pth")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = os.stat(tmp_path / "plain.txt").st_mode & 0o777
    assert want == 0o666 & ~umask
    assert os.stat(tmp_path / "a.pth").st_mode & 0o777 == want
    assert os.stat(tmp_path / "last_checkpoint").st_mode & 0o777 == want
