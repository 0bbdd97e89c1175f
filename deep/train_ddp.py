"""Multi-process training: one `ssldyn train` per process, started by torchrun (issue 4, item 5).

    torchrun --nproc-per-node N -m deep.train_ddp --method byol --dataset cifar10 --out runs/byol

takes exactly the arguments of `ssldyn train` (and `ssldyn train --nproc N ...` runs this for you on
one machine). Each process joins the process group torchrun describes (NCCL between GPUs, gloo on
the CPU), takes GPU LOCAL_RANK, and trains its shard of every global batch; see `deep.distributed`
for what is gathered and averaged across processes. Only rank 0 writes the run directory and
prints the summary.
"""
import sys

from ssldyn import cli

from deep import distributed


def main(argv: list[str] | None = None) -> int:
    """Run `ssldyn train argv...` inside the torchrun process group; returns its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not distributed.launched_by_torchrun():
        print("deep.train_ddp: error: start it with torchrun (torchrun --nproc-per-node N -m deep.train_ddp ...) "
              "or use ssldyn train --nproc N", file=sys.stderr)
        return 2
    with distributed.process_group():
        return cli.main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
