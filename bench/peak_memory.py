"""Peak host memory of a benchmark's child process (the benchmarks' shared measure)."""
from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """This process's peak resident set since it started its program, MiB.

    Linux keeps ``ru_maxrss`` across fork and exec, so a child started from a (large)
    benchmark would report the parent's peak; ``VmHWM`` belongs to the program's own
    address space. bench/io.py's pipeline child read 785 MiB by ``ru_maxrss`` against 324
    by ``VmHWM`` after its parent had held 720 MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
