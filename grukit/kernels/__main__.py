"""``python -m grukit.kernels``: print whether the native kernel runs here, from where, and its CPU paths."""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Print :func:`grukit.kernels.status` as JSON; exit 0 when the native kernel runs, 1 when it does not."""
    import warnings

    from . import status

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status says the same thing
        info = status()
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if info["native"] else 1


if __name__ == "__main__":
    sys.exit(main())
