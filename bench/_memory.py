"""Peak memory of a bench's child process."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_kb() -> int:
    """This process's peak RSS since it started (``VmHWM``). Not ``getrusage``'s
    ``ru_maxrss``: Linux carries that over ``exec`` from the forked copy of the parent, so a
    child reported the bench process's own RSS whenever its peak was lower."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
