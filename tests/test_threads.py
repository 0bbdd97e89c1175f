"""deep.threads: the thread count follows the other processes' load: down at once, up after a quiet window."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deep import threads

LINUX = Path("/proc/stat").exists()


class FakeMachine:
    """Two cores; `strangers` runnable threads of other processes; their CPU use per second."""

    def __init__(self, monkeypatch):
        self.strangers, self.others_per_second, self.clock = 0, 0.0, 0.0
        self.busy_seconds = self.own_seconds = 0.0
        monkeypatch.setattr(threads, "available_cores", lambda: 2)
        monkeypatch.setattr(threads, "others_running", lambda: self.strangers)
        monkeypatch.setattr(threads, "cpu_seconds", lambda: (self.busy_seconds, self.own_seconds))
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.clock)

    def busy(self, strangers: int):
        self.strangers, self.others_per_second = strangers, float(strangers)

    def wait(self, seconds: float):
        """Time passes: this process keeps one core busy, the strangers use theirs."""
        self.clock += seconds
        self.own_seconds += seconds
        self.busy_seconds += seconds * (1 + self.others_per_second)


@pytest.fixture
def machine(monkeypatch):
    before = torch.get_num_threads()
    yield FakeMachine(monkeypatch)
    torch.set_num_threads(before)


def test_drops_to_the_free_cores_at_once_and_returns_after_a_quiet_window(machine):
    governor = threads.ThreadGovernor(max_threads=2, window=1.0)
    assert governor.adapt() == 2 and torch.get_num_threads() == 2
    machine.busy(1)
    assert governor.adapt() == 1 and torch.get_num_threads() == 1  # the first step after the load began
    machine.wait(5.0)
    assert governor.adapt() == 1  # still loaded
    machine.busy(0)
    assert governor.adapt() == 1  # the window that just closed saw the load
    machine.wait(0.5)
    assert governor.adapt() == 1  # quiet, but not for a whole window yet
    machine.wait(0.6)
    assert governor.adapt() == 2 and torch.get_num_threads() == 2
    assert governor.steps_at == {2: 2, 1: 4}
    assert threads.describe(governor.steps_at) == "1–2 threads (2: 33% of steps)"


def test_never_below_one_thread_nor_above_its_maximum(machine):
    governor = threads.ThreadGovernor(max_threads=8, window=1.0)
    assert governor.max_threads == 2  # capped at the cores
    machine.busy(5)
    assert governor.adapt() == 1
    one = threads.ThreadGovernor(max_threads=1)
    machine.busy(0)
    machine.wait(3.0)
    assert one.adapt() == 1 and threads.describe(one.steps_at) == "1 thread"


def test_a_brief_stranger_is_forgiven_after_one_window(machine):
    governor = threads.ThreadGovernor(max_threads=2, window=1.0)
    machine.strangers = 1  # runnable at the moment of the reading, but using no CPU over time
    assert governor.adapt() == 1
    machine.strangers = 0
    machine.wait(1.5)
    assert governor.adapt() == 2


@pytest.mark.skipif(not LINUX, reason="reads Linux's /proc")
def test_a_busy_process_is_seen_running_and_using_a_core():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        start, t0 = threads.cpu_seconds(), time.monotonic()
        seen = [threads.others_running() for _ in range(5)]
        time.sleep(0.5)
        end = threads.cpu_seconds()
        others = ((end[0] - start[0]) - (end[1] - start[1])) / (time.monotonic() - t0)
    finally:
        busy.kill()
        busy.wait()
    assert min(seen) >= 1
    assert others > 0.5
