"""CPU threads that follow the cores other processes leave free (issue 13, item 1).

Two OpenMP threads on two cores are fast only while nothing else runs: every parallel op waits for
its slowest thread, and a thread the scheduler has set aside stalls the whole op while the other
spin-waits. Measured on the 2-core machine of this project (BYOL, cpu preset): about 650 img/s with
2 threads alone, 15.8 img/s with 2 threads beside one busy process, about 360 img/s with 1 thread
beside it. So before each training step `ThreadGovernor.adapt` reads the load of the *other*
processes from Linux's /proc and sets torch's intra-op threads to the cores they leave free:

- drop at once: when other processes have runnable threads right now (`procs_running` of /proc/stat
  minus this process's running threads, the smallest of three readings, so that a thread changing
  state between two reads is not taken for a stranger), use the cores they leave, at least 1;
- raise slowly: back to the full count only after a window of `window` seconds in which the other
  processes used less than half a core (their CPU time: all busy time minus this process's);
- ignore runnable threads that use no CPU: `procs_running` counts runnable threads host-wide, and on a
  VM or container it can hold threads that never run on this process's CPUs (on this project's 2-core
  VM one such thread was runnable for an hour while the CPUs sat idle, which kept a training at 1
  thread, 380 img/s instead of 650). The most strangers seen over a window whose other processes
  used less than a tenth of a core (IDLE_OTHERS) are taken as that baseline: they used no CPU, so
  none is load. Any busier window resets the baseline to 0, so a real stranger is counted from then
  on, a bursty or throttled one that uses less than half a core included (it is dropped for during
  its bursts and the count returns after each quiet window). The phantom may flicker (runnable in one reading, gone in the
  next, as it did here for hours): the fewest seen, the rule before, then fell to 0 in almost every
  window and counted the phantom's return as a stranger, which held a run at 1 thread on an idle
  machine. A real stranger that starts inside a quiet window costs one window (`window` seconds) at
  the full count before the drop.

A niced stranger counts like any other: with the kernel's session autogroups (on by default, and on
this machine) nice only ranks processes within one session, so a niced job started elsewhere still
takes its full share of a core (measured here: a `nice -n 10` training beside a 2-thread one took 94%
of a core and slowed it to 66 img/s).

The cores are those this process may use, not the host's: its CPU affinity (`os.sched_getaffinity`),
capped by the cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`: what a
container's `--cpus` sets), and the machine's busy time is read from the /proc/stat lines of those
CPUs only. `procs_running` has no per-CPU breakdown in /proc/stat, so the drop signal still counts
runnable threads host-wide.

Where /proc is missing (not Linux) the thread count stays as it is.
"""
import math
import os
import time
from pathlib import Path

import torch

PROC_STAT = Path("/proc/stat")
PROC_SELF = Path("/proc/self")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUIET_OTHERS = 0.5  # cores used by other processes below which a window counts as quiet
IDLE_OTHERS = 0.1   # cores used by other processes below which their runnable threads are taken as phantoms


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on (its affinity), or None where the OS does not say (not Linux)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return None


def _quota_in(folder: Path) -> float | None:
    """The CPU quota set on one cgroup folder, in CPUs, or None: v2 `cpu.max` holds "QUOTA PERIOD"
    ("max PERIOD" for none), v1 `cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota() -> float | None:
    """The smallest CPU quota, in CPUs, on the cgroup path of this process (its own cgroup and every
    parent up to the mount's root, each of which caps it), or None when there is none.

    The path comes from /proc/self/cgroup: "0::PATH" (v2) or "N:cpu,cpuacct:PATH" (v1, a mount named
    after its controllers). A container whose cgroup namespace shows the host's path has no such
    folders; they are skipped and the mount's root, the container's own cgroup, is read.
    """
    try:
        lines = (PROC_SELF / "cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers and "cpu" not in controllers.split(","):
            continue
        mount = CGROUP_ROOT / controllers if controllers else CGROUP_ROOT
        if controllers and not mount.is_dir():
            mount = CGROUP_ROOT / "cpu"
        folder = mount / path.lstrip("/")
        for candidate in (folder, *folder.parents):
            quota = _quota_in(candidate)
            if quota is not None:
                quotas.append(quota)
            if candidate == mount:
                break
    return min(quotas) if quotas else None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota rounded up (a quota of
    1.5 CPUs lets 2 threads run 75% of the time each; the JVM's container support rounds up too)."""
    cpus = allowed_cpus()
    cores = len(cpus) if cpus else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def _stat_fields(text: str) -> list[str]:
    """The fields of a /proc/<pid>/stat line after the command name (which may hold spaces)."""
    return text[text.rindex(")") + 2:].split()


def _stranger_estimate() -> int:
    """procs_running minus this process's running threads (may count a thread that just changed state)."""
    running = next(int(line.split()[1]) for line in PROC_STAT.read_text().splitlines()
                   if line.startswith("procs_running"))
    own = 0
    for task in (PROC_SELF / "task").iterdir():
        try:
            own += _stat_fields((task / "stat").read_text())[0] == "R"
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            pass
    return max(0, running - own)


def others_running() -> int | None:
    """Runnable threads of other processes right now, or None without /proc."""
    try:
        return min(_stranger_estimate() for _ in range(3))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def cpu_seconds(cpus: set[int] | None = None) -> tuple[float, float] | None:
    """(busy CPU seconds of the CPUs `cpus`, or of the whole machine for None; CPU seconds of this
    process) so far, or None without /proc. Busy is user + nice + system + irq + softirq + steal:
    steal is time a hypervisor gave to someone else, which stalls a thread team just like another
    process does."""
    try:
        lines = PROC_STAT.read_text().splitlines()
        wanted = {"cpu"} if cpus is None else {f"cpu{n}" for n in cpus}
        busy = 0
        for line in lines:
            fields = line.split()
            if fields and fields[0] in wanted:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
                busy += user + nice + system + irq + softirq + steal
        fields = _stat_fields((PROC_SELF / "stat").read_text())
        own = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    except (OSError, ValueError, IndexError):
        return None
    return busy / CLOCK_TICKS, own / CLOCK_TICKS


class ThreadGovernor:
    """Sets torch's intra-op threads between 1 and `max_threads` (default: torch's count when it is
    made, capped at the available cores) from the other processes' load. It leaves torch at its last
    count; `deep.train.train` restores the count it found when the run ends.

    Call `adapt()` before each step; it costs a few small file reads. `steps_at` counts the steps
    taken at each thread count, which the run's summary reports.
    """

    def __init__(self, max_threads: int | None = None, window: float = 1.0):
        self.cpus = allowed_cpus()
        self.cores = available_cores()
        self.max_threads = max(1, min(max_threads or torch.get_num_threads(), self.cores))
        self.window = window
        self.steps_at: dict[int, int] = {}
        self.baseline = 0  # runnable strangers a quiet window showed to use no CPU here
        self._most = 0  # the most strangers seen in the open window
        self._mark = (time.monotonic(), cpu_seconds(self.cpus))
        self._set(self.max_threads)

    def _set(self, threads: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.threads = threads

    def adapt(self) -> int:
        """Choose the thread count for the next step; returns it."""
        if self.max_threads > 1:
            now = others_running()
            quiet = self._close_window(now)
            if now is not None:
                strangers = max(0, now - self.baseline)
                if strangers:  # strangers are running now: leave them their cores
                    self._set(min(self.threads, max(1, self.cores - strangers)))
                elif self.threads < self.max_threads and quiet:
                    self._set(self.max_threads)
        self.steps_at[self.threads] = self.steps_at.get(self.threads, 0) + 1
        return self.threads

    def _close_window(self, now: int | None) -> bool:
        """Whether a window of `window` seconds closed with this reading and the other processes used less
        than QUIET_OTHERS cores in it (False while it is open). The most strangers of a window in which the
        other processes used less than IDLE_OTHERS cores become the baseline (they used no CPU: phantoms);
        any other window's baseline is 0. Starts the next window."""
        if now is not None:
            self._most = max(self._most, now)
        start, start_cpu = self._mark
        elapsed = time.monotonic() - start
        if elapsed < self.window:
            return False
        cpu = cpu_seconds(self.cpus)
        self._mark = (time.monotonic(), cpu)
        most, self._most = self._most, 0
        if cpu is None or start_cpu is None:
            return False
        others = ((cpu[0] - start_cpu[0]) - (cpu[1] - start_cpu[1])) / elapsed
        self.baseline = most if others < IDLE_OTHERS else 0
        return others < QUIET_OTHERS


def describe(steps_at: dict[int, int]) -> str:
    """'2 threads' or '1–2 threads (2: 90% of steps)' for a summary."""
    counts = sorted(steps_at)
    if not counts:
        return f"{torch.get_num_threads()} threads"
    if len(counts) == 1:
        return f"{counts[0]} thread{'s' if counts[0] > 1 else ''}"
    total = sum(steps_at.values())
    top = max(counts)
    return f"{counts[0]}–{top} threads ({top}: {math.floor(100 * steps_at[top] / total)}% of steps)"
