"""One rank of the HG-model DDP test (see test_task_ddp.py).

Trains a tiny HG-ResNet (data-dependent clustering in its stage 4) for two
steps through :func:`benchmarks.common.dense_prediction.train_and_evaluate` on the
generated segmentation fallback data and saves this rank's parameters and
record to ``OUT/rank<r>.pt``. Runs under torchrun::

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_task_worker.py OUT

or through ``tests/helpers/ddp_launch.py``, which sets the environment torchrun would set.
"""
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.common.dense_prediction import TaskSchedule, build_model, train_and_evaluate
from benchmarks.common.training import seed_everything

#: two optimiser steps of a global batch of 4 (2 images per rank) on 32x48 scenes
SCHEDULE = TaskSchedule(input_size=(32, 48), epochs=1, batch_size=4, width=0.125,
                        max_steps_per_epoch=2, augment=False, fallback_items=(8, 2))


def build():
    """The tiny HG model (seeded: identical on every rank before rank 1's change)."""
    seed_everything(0)
    return build_model("segmentation", "hg", SCHEDULE)


def main(out: str) -> None:
    torch.set_num_threads(1)
    model = build()
    rank = int(os.environ["RANK"])
    if rank == 1:  # DDP must broadcast rank 0's initial weights
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)
    empty = Path(out) / "no-data"  # no CamVid here: the generated scenes are used
    empty.mkdir(parents=True, exist_ok=True)
    record = train_and_evaluate(model, "segmentation", data_root=empty, schedule=SCHEDULE,
                                out_dir=Path(out) / "run", seed=0, progress=False)
    torch.save({"params": {k: v.detach() for k, v in model.named_parameters()},
                "record": record}, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
