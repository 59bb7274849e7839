"""Facts of one run that must stay out of cached outputs: wall seconds, speed, device, host.

A stage's outputs are hashed by DVC; anything that differs between two runs on the same inputs
(timings, the host name, the device it happened to use) would change those hashes, invalidate every
dependent stage and break `dvc metrics diff` against the published baseline.  So stages
:func:`record` such facts here, and ``stages/_run.py`` writes them, with the stage's wall seconds,
peak memory, threads and host, to ``metrics/timing/<stage>.json``: a file no stage declares and git
ignores (``cat metrics/timing/*.json`` or ``dvc metrics show metrics/timing/*.json`` to read them).
"""

from __future__ import annotations

from typing import Any

#: what the running stage recorded so far
FACTS: dict[str, Any] = {}


def record(**facts: Any) -> None:
    """Add run facts of the current stage (numbers or short strings)."""
    FACTS.update(facts)
