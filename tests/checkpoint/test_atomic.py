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
