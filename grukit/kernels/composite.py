"""The composite path: the GRU recurrence as plain torch ops (differentiable to any order, any device).

It is the floor's one time loop, :func:`grukit.functional.gru.sequence`, and its one step; this module is
the name ``dispatch`` uses for them.
"""

from __future__ import annotations

from ..functional.gru import cell, sequence

__all__ = ["cell", "sequence"]
