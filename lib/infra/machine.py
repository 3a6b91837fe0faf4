"""What this machine lends the report (no torch: `make report` decides how many notebooks run at once before any
kernel starts): the cores this process may use, the memory available, and how many notebooks to run side by side."""
import os

KERNEL_MEMORY = 3 * 2 ** 30  # bytes one notebook's kernel may take at its peak (quick profile, CPU: under 2 GiB seen)


def cores() -> int:
    """The cores this process may run on (its CPU affinity; a container's limit shows here, os.cpu_count does not)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def omp_cap(environ=None) -> int | None:
    """The cores OMP_NUM_THREADS lets the report take, where the user set it to a number >= 1; else None."""
    asked = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(asked) if asked.isdigit() and int(asked) >= 1 else None


def auto_jobs(environ=None, memory=None) -> int:
    """How many notebooks `make report` runs at once when no -j is given: the cores this process may use, at most
    OMP_NUM_THREADS where the user set it (a cap on the cores the report may take), and no more kernels than the
    available memory holds at KERNEL_MEMORY each; at least 1."""
    jobs = cores()
    if (cap := omp_cap(environ)) is not None:
        jobs = min(jobs, cap)
    memory = available_memory() if memory is None else memory
    if memory is not None:
        jobs = min(jobs, max(1, memory // KERNEL_MEMORY))
    return max(1, int(jobs))
