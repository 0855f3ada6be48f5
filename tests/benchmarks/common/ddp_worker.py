"""One rank of the DDP test (see test_bench_ddp.py).

Trains the tiny model of :func:`build` for one epoch through ``fit`` and saves
this rank's parameters and result to ``OUT/rank<r>.pt``. ``fit`` finds the
process group through the environment variables that ``torchrun`` sets, so it
runs either under torchrun::

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT

or through ``tests/helpers/ddp_launch.py``, which sets the same variables itself and
saves the test the launcher process.
"""
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.common.training import TrainConfig, fit

CONFIG = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.1, momentum=0.9,
                     max_steps_per_epoch=3, progress=False)


def build():
    """(model, data set, loss, evaluate) shared by the workers and the single-process run."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(dim=1, keepdim=True))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def loss(net, batch):
        inputs, target = batch
        return nn.functional.mse_loss(net(inputs), target)

    def evaluate(m):
        return {"mse": nn.functional.mse_loss(m(x), data.tensors[1]).item()}

    return model, data, loss, evaluate


def main(out: str) -> None:
    torch.set_num_threads(1)
    model, data, loss, evaluate = build()
    rank = int(os.environ["RANK"])
    if rank == 1:  # DDP must broadcast rank 0's initial weights
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    result = fit(model, data, loss, CONFIG, Path(out) / "run", evaluate=evaluate)
    torch.save({"state": model.state_dict(), "result": result.to_dict()},
               Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
