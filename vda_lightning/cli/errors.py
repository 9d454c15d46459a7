"""Error output and exit codes of every `vda` command, in one place.

Exit status:
  0  everything asked for was done
  1  some inputs failed (each said so in one line); the others were processed
  2  usage or input error: a bad command line, or a checkpoint, config, folder or file that cannot be used;
     nothing (more) was done
  130  interrupted (Ctrl-C / SIGINT): one line `<prog>: interrupted`, no traceback; outputs are written atomically,
     so what was being written is removed and only finished outputs remain

A known failure ends in ONE line on stderr, `<prog>: error: <file>: <cause>` (prog is `vda <command>` or the alias
`vda-<command>`), never in a traceback; argparse's own usage errors keep argparse's form (usage line + the same
error line, status 2). Unexpected exceptions (bugs) still show their traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C

# Lines of a multi-line message (checkpoint key listings) that carry the diagnosis and are kept in the one line.
HINTS = ("looks like", "suggest", "no known encoder")


class CommandError(Exception):
    """A failure the user can fix, reported as `<prog>: error: <message>` with exit status `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def describe(exc: BaseException) -> str:
    """One line for a known failure.

    OSError -> `<file>: <cause>`; a multi-line message (e.g. a checkpoint's missing/unexpected keys) -> its first
    line plus the lines that give the diagnosis, in parentheses.
    """
    if isinstance(exc, OSError) and exc.filename is not None:  # a name from outside: printed on one line
        from ..trust.paths import display

        return f"{display(exc.filename)}: {exc.strerror or exc}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    hints = [line for line in lines[1:] if any(h in line for h in HINTS)]
    return lines[0] + (f" ({'; '.join(hints)})" if hints else "")


def report(prog: str, message: str | BaseException) -> None:
    """Print `<prog>: error: <message>` as one line on stderr."""
    text = describe(message) if isinstance(message, BaseException) else message
    text = " ".join(text.splitlines())  # one line, whatever a message quoted
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


def fail(prog: str, message: str | BaseException, code: int = EXIT_USAGE) -> int:
    """Report and return the exit status, for `return fail(prog, ...)` in a command's main."""
    report(prog, message)
    return code


def interrupted(prog: str) -> int:
    """After Ctrl-C: one line on stderr (on a line of its own after a progress bar) and status 130."""
    lead = "\n" if sys.stderr.isatty() else ""
    print(f"{lead}{prog}: interrupted (Ctrl-C); unfinished outputs were removed", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def run_command(prog: str, body: Callable[[], int | None], known: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's work: its status (None = 0), or one error line and status 2 for a known failure, or
    status 130 and one line after Ctrl-C (the body's `finally`/atomic writers have removed partial outputs).

    Known failures: `CommandError`, `OSError` (a file that cannot be read or written) and the command's own
    input-error types in `known` (e.g. `CheckpointError`, `BenchmarkError`).
    """
    try:
        return int(body() or EXIT_OK)
    except KeyboardInterrupt:
        return interrupted(prog)
    except CommandError as e:
        return fail(prog, str(e), e.code)
    except (OSError, *known) as e:
        return fail(prog, e)
