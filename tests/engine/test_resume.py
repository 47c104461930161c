"""apd.engine.resume: --resume refuses a checkpoint of another model and a changed teacher."""
import pytest
import torch
from torch import nn

from apd.engine.resume import ResumeMismatchError, TeacherFingerprint, check_resume_checkpoint


def _model(channels=4):
    return nn.Sequential(nn.Conv2d(3, channels, 3), nn.BatchNorm2d(channels), nn.Conv2d(channels, 2, 1))


def test_a_checkpoint_of_another_model_is_refused_naming_the_tensors(tmp_path):
    path = str(tmp_path / "model_0000009.pth")
    torch.save({"model": _model().state_dict(), "iteration": 9}, path)
    check_resume_checkpoint(_model(), path)  # same model: fine
    wider = _model(channels=8)
    with pytest.raises(ResumeMismatchError) as refused:
        check_resume_checkpoint(wider, path)
    message = str(refused.value)
    assert f"'{path}' holds another model than the config builds: shape mismatch (7): " in message
    assert "0.weight (checkpoint (4, 3, 3, 3) vs model (8, 3, 3, 3))" in message
    deeper = nn.Sequential(*_model(), nn.Conv2d(2, 2, 1))
    with pytest.raises(ResumeMismatchError, match=r"missing \(2\): 3.weight, 3.bias"):
        check_resume_checkpoint(deeper, path)
    with pytest.raises(ResumeMismatchError, match=r"unexpected \(2\): 2.weight, 2.bias"):
        check_resume_checkpoint(nn.Sequential(*list(_model())[:2]), path)


def test_a_changed_teacher_is_refused_and_the_same_one_resumes():
    torch.manual_seed(0)
    teacher = _model()
    saved = TeacherFingerprint(teacher, "teacher_a.pth").state_dict()
    assert saved["file"] == "teacher_a.pth" and len(saved["sha256"]) == 64
    TeacherFingerprint(teacher, "copy_of_a.pth").load_state_dict(saved)  # same tensors, other file name
    other = _model()
    with torch.no_grad():
        other.load_state_dict(teacher.state_dict())
        other[1].running_var[0] += 1e-6  # one BN statistic differs
    with pytest.raises(ResumeMismatchError, match=r"distilled from the teacher in 'teacher_a.pth'.*"
                                                  r"model.teacher_weights='teacher_b.pth' holds another teacher"):
        TeacherFingerprint(other, "teacher_b.pth").load_state_dict(saved)
