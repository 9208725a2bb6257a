"""Peak resident memory of this process, measured so that a parent's memory never leaks in.

``getrusage(RUSAGE_SELF).ru_maxrss`` survives ``execve`` on Linux: a child started by
``subprocess`` (vfork + exec) from a parent holding 2 GB reports at least 2 GB, whatever it did.
``VmHWM`` in ``/proc/self/status`` is the high-water mark of the current address space only.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """The peak RSS of this process's own address space, in bytes (``ru_maxrss`` off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
