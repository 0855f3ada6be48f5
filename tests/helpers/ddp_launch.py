"""Launch a test's worker as ``torchrun`` would: N spawned CPU processes (gloo).

``run_ranks(worker.main, out_dir)`` starts ``world_size`` fresh interpreters;
each gets the environment torchrun sets (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` on a free
loopback port) and calls ``main(out_dir)``, so the code under test takes its
real torchrun path. ``main`` must be a module-level function (it is pickled).
"""
import os
import socket
from collections.abc import Callable

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, main: Callable[[str], None], world_size: int, port: int,
           out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "OMP_NUM_THREADS": "1"})
    main(out)


def run_ranks(main: Callable[[str], None], out: str, world_size: int = 2) -> None:
    """Run ``main(out)`` in ``world_size`` spawned ranks and wait for all of them."""
    mp.start_processes(_entry, args=(main, world_size, free_port(), str(out)),
                       nprocs=world_size, join=True, start_method="spawn")
