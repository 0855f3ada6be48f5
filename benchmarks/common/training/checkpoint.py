"""Checkpoints: RNG states, atomic saves, resume and moving stale files aside."""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common.results import (
    utc_now,
)

from .config import (
    CHECKPOINT_FORMAT,
    RESULT_NAME,
    TrainConfig,
)
from .distributed import (
    _Dist,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _move_aside(path: Path) -> Path | None:
    if not path.exists():
        return None
    stamp = utc_now().replace(":", "").replace("-", "")
    target = path.with_name(f"{path.name}.stale-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.stale-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    return target


def _load_checkpoint(
    path: Path, config: TrainConfig, steps_per_epoch: int, dataset_size: int,
    ctx: _Dist, fresh: bool,
) -> dict[str, Any] | None:
    """Load a resumable checkpoint, or move an unusable one aside (rank 0) and return None."""
    reason = None
    ckpt = None
    if path.exists():
        if fresh:
            reason = "fresh=True"
        else:
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # unreadable or foreign file
                reason = f"unreadable ({type(exc).__name__}: {exc})"
            else:
                if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                    reason = "unknown checkpoint format"
                elif ckpt.get("fingerprint") != config.resume_fingerprint():
                    reason = "the training configuration changed"
                elif ckpt.get("steps_per_epoch") != steps_per_epoch:
                    reason = (f"steps per epoch changed ({ckpt.get('steps_per_epoch')} -> "
                              f"{steps_per_epoch})")
                elif ckpt.get("dataset_size") != dataset_size:
                    reason = "the training set size changed"
                elif ckpt["epoch"] > config.epochs:
                    reason = f"it has {ckpt['epoch']} epochs, more than the {config.epochs} asked"
    # Every rank must agree before rank 0 touches the files.
    reason = ctx.broadcast(reason)
    if reason is None:
        return ckpt
    if ctx.is_main:
        moved = _move_aside(path)
        _move_aside(path.with_name(RESULT_NAME))
        log.warning("not resuming from %s: %s; moved it to %s", path, reason, moved)
    ctx.barrier()
    return None
