"""The ``soundlib`` command line: parses flags, calls the library, prints results.

The library never reads ``argv``. Every flag's default comes from the
configuration dataclass it fills (``TrainConfig()``, ``EmbedConfig()``,
``EvalConfig()``, ``SynthConfig()``), and each command converts its flags to
that object once (:func:`train_config_from_args` and friends), where names are
resolved and values checked. TensorFlow is imported only by the commands that
need it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Sequence

from soundlib.cli.options import embed_config_from_args, eval_config_from_args, method_from_args, train_config_from_args
from soundlib.cli.parser import build_parser
from soundlib.errors import SoundlibError
from soundlib.text import visible

__all__ = ["main", "build_parser", "embed_config_from_args", "eval_config_from_args", "method_from_args",
           "train_config_from_args"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``soundlib`` command; returns the exit status (2 with a one-line message for bad input).

    A reader that stops reading (``soundlib variants | head -1``) ends the command quietly with status
    141 (128 + SIGPIPE, as a command killed by the closed pipe), without a traceback.
    """
    for stream in (sys.stdout, sys.stderr):  # file names that are not valid UTF-8 print as \udcXX, never raise
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]  # typeshed: TextIO, no reconfigure
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, where a closed pipe could only be reported
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # Python flushes stdout again at exit: into /dev/null
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 141


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.verbose or args.verbose_all:
        from soundlib.runtime import set_verbose

        set_verbose(True)  # before anything imports TensorFlow; inherited by sweep processes and kernels
    with _warnings_as_lines(args.command):
        try:
            return int(args.func(args) or 0)
        except SoundlibError as exc:  # names in messages as text: no terminal escapes (soundlib.text.visible)
            print(f"soundlib {args.command}: error: {visible(exc, keep=chr(10))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"soundlib {args.command}: interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _warnings_as_lines(command: str):
    """Show soundlib's warnings as ``soundlib CMD: warning: ...`` lines on stderr, every time they are issued."""
    import warnings

    from soundlib.errors import SoundlibWarning

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SoundlibWarning):
            print(f"soundlib {command}: warning: {visible(message, keep=chr(10))}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SoundlibWarning)
        warnings.showwarning = show
        yield

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
