"""Stop every process of a run on SIGTERM or SIGINT, promptly, and say which signal stopped it where.

Schedulers send SIGTERM before they kill. Detectron2's launcher spawns one worker per GPU with
``torch.multiprocessing``; the default SIGTERM action ends the launcher alone, and its workers go on
training and writing checkpoints, so a ``--resume`` started then is a second writer in the folder.

``train_net.py`` uses two context managers:

- :func:`forward_stop_signals` in the launching process, around Detectron2's ``launch``: a SIGTERM or
  SIGINT is passed on to every worker process; workers still alive ``grace`` seconds later are
  SIGKILLed (a worker blocked in a collective cannot run a Python handler).
- :func:`stop_on_signals` in every training process (the single process of a 1-process run, or each
  spawned worker): the first SIGTERM/SIGINT raises :class:`RunStopped` in the main thread. A spawned
  worker also passes the signal to the launcher, which passes it to the other workers, so a signal to any
  one worker stops the whole run. Later signals are ignored while stopping.

Nothing is saved on the signal: the run keeps the checkpoints it wrote, which are complete (each file
and ``last_checkpoint`` are written atomically, apd/checkpoint/atomic.py), and ``--resume`` continues
from ``last_checkpoint`` exactly as after a SIGKILL. A process forked from a training process (a data
loader worker) that inherits the handler gets Python's default behaviour instead.
"""
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from typing import Iterator, List, Optional

__all__ = ["RunStopped", "STOP_SIGNALS", "forward_stop_signals", "stop_on_signals", "stopping"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stopping: List[int] = []  # the signal that is stopping this process, once one arrived


class RunStopped(BaseException):
    """A stop signal arrived. A ``BaseException`` (like ``KeyboardInterrupt``), so Detectron2's
    training loop does not log it as a crash.

    Attributes:
        signum: the signal number. name: its name ("SIGTERM"). exit_status: 128 + signum, the status
            a shell reports for a process ended by that signal.
        iteration: the iteration that was running, set by the trainer's caller (None before training).
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_status = 128 + signum
        self.iteration: Optional[int] = None
        super().__init__(f"stopped by {self.name}")


def stopping() -> Optional[int]:
    """The signal number that is stopping this process, or None."""
    return _stopping[0] if _stopping else None


def _default_action(signum: int, frame) -> None:
    if signum == signal.SIGINT:
        signal.default_int_handler(signum, frame)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def stop_on_signals(notify_parent: bool = False) -> Iterator[None]:
    """Within the block, the first SIGTERM/SIGINT raises :class:`RunStopped` in this process.

    Args:
        notify_parent: also send the signal to the parent process (a spawned worker tells its launcher,
            which stops the other workers; see :func:`forward_stop_signals`).
    """
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child (loader worker) that inherited this handler
            _default_action(signum, frame)
            return
        if _stopping:
            return
        _stopping.append(signum)
        if notify_parent:
            with contextlib.suppress(OSError):
                os.kill(os.getppid(), signum)
        raise RunStopped(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def forward_stop_signals(grace: float = 20.0) -> Iterator[List[int]]:
    """Within the block, a SIGTERM/SIGINT to this process is sent on to every child process that
    ``multiprocessing`` started (Detectron2's workers), and children still alive ``grace`` seconds after
    the first signal are SIGKILLed. Yields the list of signals received (empty if none)."""
    received: List[int] = []

    def kill_survivors():
        for child in multiprocessing.active_children():
            logger.warning(f"Worker process {child.pid} did not stop within {grace:g} s of the signal: SIGKILL")
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)

    def handler(signum, frame):
        first = not received
        received.append(signum)
        if not first:
            return
        for child in multiprocessing.active_children():
            with contextlib.suppress(OSError):
                os.kill(child.pid, signum)
        timer = threading.Timer(grace, kill_survivors)
        timer.daemon = True
        timer.start()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
