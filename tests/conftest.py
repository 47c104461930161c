import os

import pytest
import torch

# Tests run from the repository root (configs are addressed relative to it).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _repo_root_cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
