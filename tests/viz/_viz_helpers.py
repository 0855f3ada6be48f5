"""Helpers of the visualisation tests: small group graphs of generated scenes and a
check that a PNG is a real picture."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import pyg_hgconv as H
from pyg_hgconv.datasets import HeterogeneousScenes

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
for path in (REPO_ROOT, EXAMPLES):  # `benchmarks` and the examples' `_common`
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def scene_images(batch: int = 2, size: tuple[int, int] = (24, 32), seed: int = 0):
    """``[B, 3, H, W]`` generated road-scene-like images (flat regions + small objects)."""
    data = HeterogeneousScenes(num_images=batch, size=size, seed=seed, num_objects=(4, 8))
    return torch.stack([data[i][0] for i in range(batch)])


def build_graph(images: torch.Tensor, num_groups: int = 20, **kwargs):
    """A deterministic (eval-mode) batch of group graphs of ``images``."""
    return H.ImageToGroupGraph(num_groups=num_groups, learnable=False, **kwargs).eval()(images)


def assert_real_png(path: Path, min_size: tuple[int, int] = (100, 100)) -> np.ndarray:
    """``path`` is a PNG that decodes, is at least ``min_size`` (w, h) and is not one colour."""
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as picture:
        picture.load()
        assert picture.width >= min_size[0] and picture.height >= min_size[1], picture.size
        pixels = np.asarray(picture.convert("RGB"))
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 16, f"{path} has only {len(colours)} colours"
    assert not list(path.parent.glob(f".{path.name}.*")), "temporary file left behind"
    return pixels
