"""Errors a user can fix: their message is one line that names the problem and the fix."""


class UserInputError(ValueError):
    """Bad input or option (exit status 2 on the command line)."""


class ImageLoadError(UserInputError):
    """An image file that cannot be read; the message names the file."""
