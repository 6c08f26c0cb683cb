"""The one exception type fer-data raises for problems a user can fix."""

import sys
from typing import NoReturn

__all__ = ["FerDataError", "exit_with"]


class FerDataError(Exception):
    """Bad input or configuration; the message names the file, the row and the fix."""


def exit_with(exc: FerDataError) -> NoReturn:
    """Print `exc` as one line on stderr and exit with code 1 (for command-line entry points)."""
    message = " ".join(str(exc).split())
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)
