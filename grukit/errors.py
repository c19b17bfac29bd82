"""Exceptions for user mistakes: the CLI prints them as one line and exits with code 2."""


class UserInputError(ValueError):
    """Bad input from the user (a file, a column, an option value); the message says what and where."""


class DataNotFoundError(UserInputError, FileNotFoundError):
    """A dataset folder could not be found where grukit looked."""


class ShapeError(ValueError, RuntimeError):
    """An input or state of the wrong shape given to a layer's forward.

    Both a ValueError (grukit's convention for bad values) and a RuntimeError (what ``torch.nn.GRU``
    raises for the same mistakes), so code written against either keeps working.
    """
