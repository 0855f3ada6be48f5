"""THE training loop of the benchmarks: :func:`fit`.

One loop serves every task: what a step computes is the caller's
``compute_loss(model, batch) -> (loss, logs)``, so segmentation with an
auxiliary head, face recognition with AM-Softmax and saliency with BCE all use
the same optimiser/scheduler/checkpoint/resume/DDP machinery::

    def compute_loss(model, batch):
        out, aux = model(batch.x)
        main = F.cross_entropy(out, batch.y, ignore_index=255)
        aux_loss = F.cross_entropy(aux, batch.y, ignore_index=255)
        return main + 0.4 * aux_loss, {"main": main.item(), "aux": aux_loss.item()}

    config = TrainConfig(epochs=120, batch_size=32, optimizer="adam", lr=1e-4,
                         weight_decay=1e-4, scheduler="poly")
    result = fit(model, train_set, compute_loss, config, out / "runs" / "hgconv",
                 evaluate=lambda m: {"miou": miou(m, val_loader)})

Guarantees
----------
* **Checkpoints**: after every epoch ``<out_dir>/checkpoint.pt`` (model, optimiser,
  scheduler, epoch, step, history, RNG states) and ``<out_dir>/train_result.json``
  are replaced atomically; an interrupt never corrupts them.
* **Resume**: calling :func:`fit` again with the same ``out_dir`` continues after
  the last finished epoch; a finished run is not repeated -- its weights are
  loaded into ``model`` and its stored :class:`TrainResult` returned. A
  checkpoint written under another configuration (see
  :meth:`TrainConfig.resume_fingerprint`), data set size or model is moved aside
  (``checkpoint.pt.stale-<time>``), never deleted, and training starts over.
  ``epochs`` may be raised for a finished run when the learning-rate schedule
  does not depend on it (``'none'``, ``'step'``).
* **Determinism**: every epoch starts from seeds derived from
  ``(config.seed, epoch, rank)`` -- the global Python/NumPy/torch RNGs, the
  sampler's permutation (``sampler.set_epoch``) and the DataLoader generator
  that seeds the workers -- so the data order, augmentation and dropout of an
  epoch do not depend on whether the run was interrupted before it: a resumed
  run is bit-for-bit identical to an uninterrupted one on the same machine and
  thread count. On CUDA, ``config.deterministic`` also turns on
  ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN's
  deterministic mode for the duration of :func:`fit`; ``warn_only`` because
  scatter-based message passing on CUDA (``index_add_``/``scatter_add_``
  atomics, torch-scatter kernels) has no deterministic implementation and must
  still run -- such GPU runs are reproducible only up to float rounding. On CPU
  the switch is not needed (torch's CPU kernels, scatter included, are
  deterministic for a fixed thread count) and not used, because it would fill
  every new tensor with NaN first.
* **Wall time**: ``train_time_s`` sums the per-epoch training time (data
  loading, forward, backward, optimiser), excluding evaluation and
  checkpointing, over all epochs including those of earlier interrupted calls.
* **Distributed data parallel**: launched under ``torchrun`` (``WORLD_SIZE > 1``
  in the environment), :func:`fit` initialises the process group (gloo on CPU,
  NCCL on CUDA, one GPU per ``LOCAL_RANK``) unless the caller did, wraps the
  model in :class:`~torch.nn.parallel.DistributedDataParallel` and shards the
  data with a :class:`~torch.utils.data.DistributedSampler`. ``batch_size`` is
  the *global* batch size (each rank takes ``batch_size // world_size``), so a
  schedule means the same on any number of processes. Only rank 0 writes files
  and shows progress; the group is destroyed at the end if :func:`fit` created it.
* **Evaluation**: ``evaluate(model)`` runs on **rank 0 only**, on the unwrapped
  model in ``eval()`` mode under ``torch.no_grad()``; the other ranks wait and
  receive its metrics by broadcast, so every rank returns the same
  :class:`TrainResult`. Rank-0 evaluation keeps metrics exact (no sharded
  confusion matrices to reduce) and our evaluation sets are small.
  ``evaluate`` must not use collective operations.
"""
from __future__ import annotations

from .checkpoint import _rng_state
from .config import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    OPTIMIZERS,
    RESULT_NAME,
    SCHEDULERS,
    EvalFn,
    LossFn,
    TrainConfig,
    TrainResult,
)
from .data import (
    collate,
    derive_seed,
    make_loader,
    move_to_device,
    seed_everything,
    seed_worker,
    unwrap_model,
)
from .distributed import distributed_rank, process_group
from .loop import fit, load_train_result
from .optim import build_optimizer, build_scheduler, lr_factor

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "collate",
    "derive_seed",
    "distributed_rank",
    "fit",
    "load_train_result",
    "lr_factor",
    "make_loader",
    "move_to_device",
    "process_group",
    "seed_everything",
    "seed_worker",
    "unwrap_model",
]
