"""Seeding and data loading: seeds per epoch and rank, loaders, PyG-aware collation."""
from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    default_collate,
)
from torch_geometric.seed import seed_everything as pyg_seed_everything


# --------------------------------------------------------------------------------------
def seed_everything(seed: int) -> int:
    """Seed Python's :mod:`random`, NumPy's global RNG and torch (CPU and all GPUs)
    with :func:`torch_geometric.seed.seed_everything`, after checking the seed.

    Returns ``seed``. Raises ``ValueError`` for a non-integer seed or one outside
    ``[0, 2**32)`` (NumPy's range).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    pyg_seed_everything(int(seed))
    return int(seed)


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and ``keys`` (e.g. epoch, rank).

    Uses :class:`numpy.random.SeedSequence`, so seeds of neighbouring epochs
    or ranks are statistically independent.
    """
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that seeds NumPy and :mod:`random` in a DataLoader worker.

    torch seeds each worker with ``base_seed + worker_id`` (``base_seed`` drawn
    from the loader's generator); this copies that seed to NumPy and Python so
    augmentations using them are reproducible too.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002
    random.seed(worker_seed)


def _is_pyg_data(obj: Any) -> bool:
    # PyG objects can only exist once torch_geometric is imported; checking
    # sys.modules avoids importing it (seconds) for plain tensor data sets.
    module = sys.modules.get("torch_geometric.data.data")
    return module is not None and isinstance(obj, module.BaseData)


def collate(batch: list[Any]) -> Any:
    """Default collate function of :func:`make_loader`.

    PyG :class:`~torch_geometric.data.Data`/``HeteroData`` items become one
    :class:`~torch_geometric.data.Batch` (``Batch.from_data_list``); mappings,
    tuples (also named) and lists are collated field by field, so ``(Data,
    label)`` pairs work; everything else follows
    :func:`torch.utils.data.default_collate` (tensors stacked along a new
    dim 0, numbers -> tensors, strings -> lists).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    elem = batch[0]
    if _is_pyg_data(elem):
        from torch_geometric.data import Batch

        return Batch.from_data_list(batch)
    if isinstance(elem, Mapping):
        return {key: collate([item[key] for item in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(collate(list(field)) for field in zip(*batch, strict=True)))
    if isinstance(elem, (tuple, list)):
        if any(len(item) != len(elem) for item in batch):
            raise ValueError("all items of a batch must have the same number of fields")
        return [collate(list(field)) for field in zip(*batch, strict=True)]
    return default_collate(batch)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    *,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A reproducible :class:`~torch.utils.data.DataLoader` for any map-style data set.

    The sampler is a :class:`~torch.utils.data.DistributedSampler` even in a
    single process (``num_replicas=1``): its order is a pure function of
    ``(seed, epoch)`` -- call ``loader.sampler.set_epoch(epoch)`` -- and with
    ``num_replicas > 1`` it gives each rank a disjoint shard of equal length.
    With ``shuffle=False`` and one replica the order is ``0, 1, 2, ...``.
    Workers are seeded from the loader's ``generator`` (seeded with ``seed``)
    through :func:`seed_worker`.

    ``collate_fn`` defaults to :func:`collate` (PyG ``Data`` -> ``Batch``, the
    rest like :func:`torch.utils.data.default_collate`).
    """
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError("dataset must be a map-style data set with __len__ and __getitem__")
    if isinstance(dataset, DataLoader):
        raise TypeError("pass the data set, not a DataLoader")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, "
                         f"got num_replicas={num_replicas}, rank={rank}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if collate_fn is None:
        collate_fn = collate
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank,
                                 shuffle=shuffle, seed=seed, drop_last=False)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        generator=generator,
    )


def _start_epoch(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Make everything random in ``epoch`` a function of ``(seed, epoch, rank)``."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(derive_seed(seed, epoch, rank, 1))
    seed_everything(derive_seed(seed, epoch, rank, 0))


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors, PyG ``Data``/``Batch`` and (nested) lists/tuples/dicts of them."""
    if isinstance(batch, Tensor) or (hasattr(batch, "to") and callable(batch.to)
                                     and not isinstance(batch, torch.nn.Module)):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return model.module if isinstance(
        model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    ) else model
