"""What the command-line tools under ``tools/`` share: a user's mistake (a wrong path, config key or
weights file) ends the run with one line on stderr and exit status 2, not a traceback."""
import sys
from typing import Any, Callable, Iterable, Tuple, Type

__all__ = ["tool_errors", "run_tool"]


def tool_errors() -> Tuple[Type[BaseException], ...]:
    """The exception types that mean "the user gave something wrong" to a tool: :class:`apd.errors.UserError`,
    the tools' own argument checks (``ValueError``, ``FileNotFoundError``) and a missing optional package
    (``ImportError``)."""
    from apd.errors import UserError

    return (UserError, FileNotFoundError, ValueError, ImportError)


def run_tool(name: str, run: Callable[[Any], Any], args: Any,
             extra_errors: Iterable[Type[BaseException]] = ()) -> int:
    """``run(args)``; 0 when it returns, 2 with ``"<name>: error: <message>"`` on stderr when it raises
    one of :func:`tool_errors` or ``extra_errors``. Other exceptions propagate (they are bugs)."""
    try:
        run(args)
    except tool_errors() + tuple(extra_errors) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    return 0
