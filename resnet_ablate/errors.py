"""The errors a user causes and can act on. The CLI answers them in one line with exit
code 2; anything else is a bug: a traceback and exit code 1."""


class InputError(ValueError):
    """Bad input (a name, a value, a file's contents): what was wrong and what is allowed."""


class MissingInput(InputError, FileNotFoundError):
    """A file or folder the input names is not there."""
