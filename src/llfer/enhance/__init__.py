"""Low-light enhancers: classical (``classical/``, no training) and learned (``nets/``).

Importing this package imports every module below it, which registers every
enhancer in ``llfer.registry.ENHANCERS``: adding one is adding one module with
one ``@ENHANCERS.register(...)``.
"""

from ..registry import import_members

import_members(__name__)
