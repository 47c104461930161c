"""apd.errors: every user-facing error class derives from UserError and keeps its built-in base."""
import pytest

from apd.checkpoint.converters import ConversionError
from apd.checkpoint.io import CorruptCheckpointError, NonFiniteCheckpointError, UnsafeCheckpointError
from apd.data.dataset_mapper import BadSampleError
from apd.data.image_io import UnsupportedImageError
from apd.engine.distill_trainer import NonFiniteLossError, NonFiniteStateError
from apd.engine.run_dir import OutputDirInUseError, RunDirError
from apd.errors import ConfigKeyError, ConfigMismatchError, ConfigValueError, MissingFileError, UserError
from apd.evaluation.sem_seg import CityscapesEvalUnavailable
from apd.export import StudentWeightsError
from apd.modeling.meta_arch.teacher import TeacherWeightsError


@pytest.mark.parametrize("cls, builtin", [
    (ConfigKeyError, KeyError), (ConfigValueError, ValueError), (ConfigMismatchError, ValueError),
    (MissingFileError, FileNotFoundError), (RunDirError, FileExistsError), (OutputDirInUseError, FileExistsError),
    (ConversionError, ValueError),
    (UnsafeCheckpointError, ValueError), (CorruptCheckpointError, ValueError), (NonFiniteCheckpointError, ValueError),
    (BadSampleError, ValueError), (UnsupportedImageError, ValueError), (NonFiniteLossError, FloatingPointError),
    (NonFiniteStateError, FloatingPointError), (CityscapesEvalUnavailable, RuntimeError),
    (StudentWeightsError, RuntimeError), (TeacherWeightsError, RuntimeError),
])
def test_each_user_error_is_a_user_error_and_keeps_its_builtin_base(cls, builtin):
    err = cls("bad thing")
    assert isinstance(err, UserError) and isinstance(err, builtin)


def test_config_key_error_prints_its_message_without_keyerror_quotes():
    assert str(ConfigKeyError("Config key 'x' does not exist")) == "Config key 'x' does not exist"
