"""The one exception type fer-data raises for problems a user can fix."""

__all__ = ["FerDataError"]


class FerDataError(Exception):
    """Bad input or configuration; the message names the file, the row and the fix."""
