"""apd.engine.hooks: checkpoint pruning that counts the checkpoints written before a resume."""
from types import SimpleNamespace

from detectron2.engine import hooks as d2_hooks
from torch import nn

from apd.checkpoint import AtomicCheckpointer
from apd.engine.hooks import PeriodicCheckpointer


def _folder_with_checkpoints(tmp_path, iterations):
    checkpointer = AtomicCheckpointer(nn.Linear(2, 2), str(tmp_path))
    for it in iterations:
        checkpointer.save(f"model_{it:07d}", iteration=it)
    return checkpointer


def _resumed(hook_class, checkpointer, start_iter):
    hook = hook_class(checkpointer, period=2, max_to_keep=2)
    hook.trainer = SimpleNamespace(max_iter=100, iter=start_iter - 1, start_iter=start_iter)
    hook.before_train()
    return hook


def _periodic(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model_0"))


def test_max_to_keep_prunes_checkpoints_written_before_the_resume(tmp_path):
    # The killed run left iterations 1, 3, 5 (it ran with max_to_keep=3); resumed at 6 with max_to_keep=2.
    checkpointer = _folder_with_checkpoints(tmp_path, [1, 3, 5])
    hook = _resumed(PeriodicCheckpointer, checkpointer, 6)
    assert _periodic(tmp_path) == ["model_0000003.pth", "model_0000005.pth"]  # what a run keeps: 2
    hook.step(7)
    hook.step(9)
    assert _periodic(tmp_path) == ["model_0000007.pth", "model_0000009.pth"]


def test_detectron2s_hook_forgets_them_the_fault_this_hook_fixes(tmp_path):
    checkpointer = _folder_with_checkpoints(tmp_path, [1, 3])
    hook = _resumed(d2_hooks.PeriodicCheckpointer, checkpointer, 4)
    for it in (5, 7, 9):
        hook.step(it)
    assert _periodic(tmp_path) == ["model_0000001.pth", "model_0000003.pth", "model_0000007.pth",
                                   "model_0000009.pth"]


def test_fresh_run_prunes_as_detectron2_does(tmp_path):
    checkpointer = _folder_with_checkpoints(tmp_path, [])
    hook = _resumed(PeriodicCheckpointer, checkpointer, 0)
    for it in (1, 3, 5):
        hook.step(it)
    assert _periodic(tmp_path) == ["model_0000003.pth", "model_0000005.pth"]
