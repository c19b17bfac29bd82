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


class NativeKernelWarning(RuntimeWarning):
    """The native CPU kernel could not be loaded; grukit runs on torch's own GRU or the composite path.

    Issued at most once per process, with the reason and how to fix it (``grukit.kernels.status()`` shows
    the same). Setting ``GRUKIT_NO_FUSED=1`` turns the kernel off on purpose and silences it.
    """
