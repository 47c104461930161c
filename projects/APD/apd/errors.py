"""The user's mistakes: one base class, so a command catches them all and prints one line.

Every error the user can fix without touching the code (a config key or value, a path, a checkpoint, the
data) derives from :class:`UserError`. ``train_net.py`` (and the tools) catch ``UserError``, print
``<tool>: error: <message>`` and exit with status 2, Python's ``argparse`` convention for bad input. Each
class also keeps the built-in base that callers already catch (``KeyError``, ``ValueError``, ...), so
``except ValueError`` keeps working.

The classes of one subject live with their owner (``apd.checkpoint.io.CheckpointError``,
``apd.engine.distill_trainer.NonFiniteLossError``, ...); the config errors, raised by the config checks and
by the models' constructors alike, live here.
"""

__all__ = ["ConfigKeyError", "ConfigMismatchError", "ConfigValueError", "MissingFileError", "UserError"]


class UserError(Exception):
    """A mistake in what the user gave (config, paths, weights, data); its message is one line naming it."""


class ConfigKeyError(UserError, KeyError):
    """A config key that does not exist (a typo), or one no component uses (``model.loss_weights``)."""

    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class ConfigValueError(UserError, ValueError):
    """A config value of the wrong type or meaning (``save_teacher=no``, ``max_iter=abc``)."""


class ConfigMismatchError(UserError, ValueError):
    """Two config values that must agree do not (class counts, pixel formats, batch and BN)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the config or the command line names does not exist."""
