"""Exceptions for user mistakes: the CLI prints them as one line and exits with code 2."""


class UserInputError(ValueError):
    """Bad input from the user (a file, a column, an option value); the message says what and where."""


class DataNotFoundError(UserInputError, FileNotFoundError):
    """A dataset folder could not be found where grukit looked."""
