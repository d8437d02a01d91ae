"""Command-line front ends. Only this package parses arguments and prints.

- ``main``: the one front door, ``plsearch VERB`` (console script) and ``python -m plsearch VERB``.
- one module a verb, each with ``main(argv) -> int``: ``search``, ``train``, ``evaluate``, ``predict``,
  ``profile``, ``export``, ``report``, ``confirm``, ``fidelity``, ``table``, ``runs``.
- ``formatting``: what the CLIs print (metric tables, one line per trial); ``search_progress``: the search's display.
- ``python -m plsearch.VERB`` reaches the same ``main`` through an entry shim (``plsearch/VERB.py`` or a
  package's ``__main__.py``, three lines each): the only modules outside this package that import it.

Every CLI turns bad input into one line on stderr (``error: <problem>; <fix>``) and exit code 2,
through ``run_cli``; the library underneath raises typed exceptions. ``--debug`` (every CLI) or the
environment variable ``PLSEARCH_DEBUG=1`` prints the error's traceback above that line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Sequence

EXIT_USAGE = 2
_DEBUG = {"on": False}  # set by a Parser that read --debug, cleared by run_cli


def debugging() -> bool:
    """``--debug`` was given, or ``PLSEARCH_DEBUG`` is set (to anything but empty, 0, false or no)."""
    return _DEBUG["on"] or os.environ.get("PLSEARCH_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class CLIError(Exception):
    """A user-facing problem: the message names the problem and the fix."""


def fail(message: str) -> int:
    """Print one error line and return the usage exit code."""
    from plsearch.search.storage import redact

    line = redact(" ".join(str(message).split()))  # one line, whatever the exception text held; no passwords
    print(f"error: {line}", file=sys.stderr)
    return EXIT_USAGE


def run_cli(body: Callable[[], int | None], user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``body``; map expected user errors to one line + exit 2, Ctrl-C to exit 130."""
    from plsearch.config.schema import ConfigError

    expected = (
        CLIError,
        ConfigError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
        IsADirectoryError,
    ) + tuple(user_errors)
    _DEBUG["on"] = False
    try:
        return int(body() or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except expected as e:  # noqa: B014
        if debugging():
            import traceback

            traceback.print_exc(file=sys.stderr)
        return fail(str(e) or type(e).__name__)


class _Redact(logging.Filter):
    """Hide passwords of storage URLs in every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from plsearch.search.storage import redact

        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Redact) for f in handler.filters):
            handler.addFilter(_Redact())


def parse_device(text: str | None) -> Any:
    """``--device``: ``plsearch.config.gate.check_device`` (``auto`` -> cuda if available else cpu; an unknown or
    absent device is a ``DeviceError``, one line and exit 2 through ``run_cli``)."""
    from plsearch.config.gate import check_device

    return check_device(text)


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named option, when given, must be a positive finite number (``--batch-size 0``, ``--timeout nan``
    and ``--timeout inf`` are CLIErrors: NaN passes every comparison, so ``value <= 0`` alone lets it in)."""
    import math

    for name in names:
        value = getattr(args, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and not (math.isfinite(v) and v > 0):
                flag = "--" + name.replace("_", "-")
                raise CLIError(
                    f"{flag} must be positive and finite, got {v}; pass e.g. {flag} 1"
                    + (" (or leave it out for no limit)" if name == "timeout" else "")
                )


def check_seed(args: argparse.Namespace, name: str = "seed") -> None:
    """``--seed``, when given, must be a seed numpy and torch accept: 0 <= seed < 2**32."""
    value = getattr(args, name, None)
    if value is not None and not 0 <= value < 2**32:
        raise CLIError(f"--{name.replace('_', '-')} {value} is out of range; allowed: 0 <= seed <= {2**32 - 1}")


def argv_or_sys(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ...; see --help``) via ``CLIError``.

    Parse inside ``run_cli`` so that the error becomes exit code 2 like every other bad input. Every such
    parser takes ``--debug`` (an error's traceback above its line, as ``PLSEARCH_DEBUG=1``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="on an error, print its traceback above the one line [$PLSEARCH_DEBUG]"
        )

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        if "--debug" in (sys.argv[1:] if args is None else list(args)):  # before parsing: its errors too
            _DEBUG["on"] = True
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # argparse's NoReturn: it raises
        raise CLIError(f"{message}; see {self.prog} --help")
