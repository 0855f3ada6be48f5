"""Distributed data parallel helpers (process group, rank, deterministic mode)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist


# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def _init_distributed(device: str) -> _Dist:
    dev = torch.device(device)
    if dist.is_available() and dist.is_initialized():
        ctx = _Dist(dist.get_rank(), dist.get_world_size(), dev, created_group=False)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        ctx = _Dist(dist.get_rank(), dist.get_world_size(), dev, created_group=True)
    else:
        return _Dist(0, 1, dev)
    if dev.type == "cuda" and dev.index is None:
        ctx.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return ctx


def distributed_rank() -> int:
    """This process's rank under ``torchrun`` (``RANK``; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def process_group(device: str = "cpu") -> Iterator[int]:
    """One process group for a whole command under ``torchrun``.

    With ``WORLD_SIZE > 1`` and no group yet, creates one (gloo, or NCCL for a
    CUDA ``device``) that every :func:`fit` of the command reuses, and destroys
    it on exit; otherwise does nothing. Yields this process's rank.
    """
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        dist.init_process_group(backend="nccl" if torch.device(device).type == "cuda"
                                else "gloo")
        created = True
    try:
        yield distributed_rank()
    finally:
        if created:
            dist.destroy_process_group()


@contextlib.contextmanager
def _deterministic_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic algorithms (warn-only) and cuDNN flags on CUDA, restored afterwards.

    CPU runs need neither: torch's CPU kernels (scatter included) are
    deterministic for a fixed thread count, and the global switch would make
    every ``torch.empty`` fill its memory with NaN (a slowdown) and import
    ``torch._inductor`` (seconds).
    """
    if not enabled or device.type != "cuda":
        yield
        return
    old = (torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.deterministic = old[2]
        torch.backends.cudnn.benchmark = old[3]
