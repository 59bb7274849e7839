"""Low-light enhancers: classical (no training) and learned (nets/).

Importing this package registers every enhancer in ``llfer.registry.ENHANCERS``.
"""

from . import base, classical  # noqa: F401  (registration side effects)
from . import nets  # noqa: F401

__all__ = ["base", "classical", "nets"]
