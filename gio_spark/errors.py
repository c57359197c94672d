"""Errors that are the user's to fix: reported as one line, without a traceback."""


class UserError(Exception):
    """Bad input or configuration; the message names the file, row or option."""
