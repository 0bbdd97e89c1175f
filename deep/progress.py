"""Where training is, for people: a tqdm bar on a terminal; elsewhere (a log file under nohup or a
cluster job) one readable line on stderr per metrics line, at most every `PROGRESS_SECONDS`, with the
loss, the lr, images/s and the CPU threads in use (issue 14, item 6)."""
import math
import sys
import time

from tqdm import tqdm

PROGRESS_SECONDS = 20.0  # least time between two progress lines in a log file


class Progress:
    """The progress of one training run, shown by the main process only (`enabled`)."""

    def __init__(self, config: dict, steps_per_epoch: int, enabled: bool = True):
        self.config, self.steps_per_epoch = config, steps_per_epoch
        self.enabled = enabled
        self.terminal = self.enabled and sys.stderr.isatty()
        self.bar = None
        self.printed = -math.inf

    def epoch(self, epoch: int):
        total = self.config["epochs"]
        self.bar = tqdm(total=self.steps_per_epoch, desc=f"{self.config['method']} epoch {epoch}/{total}",
                        disable=not self.terminal, leave=False, dynamic_ncols=True)

    def step(self, record: dict, threads: int | None):
        if self.terminal:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['img_per_s']:.0f}")
        elif self.enabled and time.monotonic() - self.printed >= PROGRESS_SECONDS:
            total = self.steps_per_epoch * self.config["epochs"]
            where = f"threads {threads}" if threads else self.config["device"]
            print(f"{self.config['method']} epoch {record['epoch']}/{self.config['epochs']} step {record['step']}/"
                  f"{total}: loss {record['loss']:.4f}  lr {record['lr']:.4g}  {record['img_per_s']:.0f} img/s  "
                  f"{where}", file=sys.stderr, flush=True)
            self.printed = time.monotonic()

    def advance(self):
        self.bar.update()

    def close(self):
        self.bar.close()
