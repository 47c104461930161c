"""Fixtures of the reliability tests: a train_net.py runner (the demo teacher checkpoint ``teacher_weights``
and the shared run ``apd_demo_run`` are in tests/conftest.py).

The runs use the demo APD config (configs/demo/apd_pspnet_r18_demo.py) shrunk by overrides: batch 2,
64×128 crops, no worker processes. Subprocesses get one BLAS/OpenMP thread each: several test runs and
helpers share two cores, and oversubscribed OpenMP threads make a step ~10× slower.
"""
import copy
import os

import pytest
import torch

from helpers import popen_script, run_script
from reliability_helpers import REPO, read_metrics


@pytest.fixture
def run_train_net():
    """``run_train_net(args, datasets_root, check=True)`` runs ``train_net.py args`` from the repo root
    and returns the CompletedProcess (stdout+stderr in ``.stdout``/``.stderr``)."""

    def run(args, datasets_root, check=True, timeout=600):
        return run_script("train_net.py", args, cwd=REPO, datasets_root=datasets_root, check=check,
                          timeout=timeout)

    return run


@pytest.fixture
def popen_train_net():
    """``popen_train_net(args, datasets_root, log_file)``: a background train_net.py (for kill tests)."""
    procs = []

    def start(args, datasets_root, log_file, threads=1):
        f = open(log_file, "w")
        proc = popen_script("train_net.py", args, cwd=REPO, log_file=f, datasets_root=datasets_root,
                            threads=threads)
        procs.append((proc, f))
        return proc

    yield start
    for proc, f in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        f.close()


@pytest.fixture
def metrics():
    return read_metrics


@pytest.fixture(scope="session")
def _apd_demo_distiller_built(teacher_weights):
    """The demo APD distiller built once (seed 0, train mode), its config, and the RNG state right after."""
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py"))
    cfg.model.teacher_weights = teacher_weights
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    model.train()
    return model, cfg, torch.get_rng_state()


@pytest.fixture
def apd_demo_distiller(_apd_demo_distiller_built):
    """A freshly built demo APD distiller (seed 0) in train mode, with its optimisers' configs:
    returns ``(model, cfg)``; ``cfg`` is the LazyConfig of configs/demo/apd_pspnet_r18_demo.py.

    Each test gets its own deep copy of one session-built model (same weights, buffers, hooks and train
    mode as a new instantiation) and the global RNG in the state that instantiation leaves."""
    model, cfg, rng_state = _apd_demo_distiller_built
    torch.set_rng_state(rng_state)
    return copy.deepcopy(model), copy.deepcopy(cfg)
