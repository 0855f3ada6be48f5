r"""The operator benchmark's inputs: real images through a fixed feature extractor.

Images
------
:func:`image_source` picks the frames: the first ``batch`` frames of the
CamVid ``val`` split (real road scenes, the paper's main task) when
``<data root>/camvid`` exists, else the first images of a seeded
:class:`~pyg_hgconv.datasets.HeterogeneousScenes` set (the generated
fallback, shipped as code; the benchmark says so in its output).

Feature extractor
-----------------
:class:`FeatureExtractor` is the trunk of the task benchmark's segmentation
networks at initialisation: stem and stages 1-3 of a ResNet-18 with a dilated
stage 3 (output stride 8), width ``C / 256`` so that stage 3 has ``C``
channels, Kaiming-initialised from ``seed`` and in eval mode. A frame resized
to ``(8H, 8W)`` therefore gives an ``[C, H, W]`` map -- exactly the input of
the HG-Conv slot (stage 4) of :class:`~pyg_hgconv.nn.models.HGResNetSeg`. The
extractor is untrained (no pre-trained weights exist offline), but its
features keep the image's layout (colour regions, edges), which is what the
clustering groups; the sizes of the group graphs, and with them every time and
FLOP figure, depend on the image content only through that layout.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pyg_hgconv.nn.models import resnet18

__all__ = ["STRIDE", "FeatureExtractor", "feature_map", "image_source", "load_images"]

#: output stride of the extractor (input image = ``STRIDE`` x the feature map)
STRIDE = 8
#: channels of stage 3 of a ResNet-18 at width 1
_STAGE3_CHANNELS = 256


def image_source(data_root: str | os.PathLike) -> dict[str, Any]:
    """Where the operator images come from: CamVid ``val`` or the generated fallback.

    Returns ``{"dataset", "split", "root", "fallback", "note"}``.
    """
    from pyg_hgconv.datasets import has_dataset

    root = Path(data_root).expanduser()
    if has_dataset("camvid", root):
        return {"dataset": "camvid", "split": "val", "root": str(root.resolve()),
                "fallback": False, "note": "CamVid val frames (real road scenes)"}
    return {"dataset": "heterogeneous_scenes", "split": "generated", "root": None,
            "fallback": True,
            "note": (f"no CamVid under {root}: the procedurally generated HeterogeneousScenes "
                     "set is used instead (no download needed); the numbers describe "
                     "synthetic scenes, not CamVid")}


def load_images(source: dict[str, Any], num_images: int, size: tuple[int, int],
                seed: int = 0) -> Tensor:
    """The first ``num_images`` frames of ``source``, resized to ``size``,
    standardised, ``[num_images, 3, H, W]`` float32."""
    from pyg_hgconv.datasets import CamVid, HeterogeneousScenes

    if num_images < 1:
        raise ValueError(f"'num_images' must be >= 1 (got {num_images})")
    if source["dataset"] == "camvid":
        data = CamVid(source["root"], source["split"], size=size, normalize=True, cache=False)
    else:
        data = HeterogeneousScenes(num_images, size=size, seed=seed, normalize=True,
                                   cache=False)
    if len(data) < num_images:
        raise ValueError(f"{source['dataset']} has {len(data)} images, {num_images} needed")
    return torch.stack([data[i][0] for i in range(num_images)])


class FeatureExtractor(nn.Module):
    """Stem and stages 1-3 of a seeded, untrained dilated ResNet-18 (see the module docstring).

    Args:
        channels (int): output channels ``C`` (stage-3 width; a multiple of 4
            keeps every stage width exact).
        seed (int): seed of the initialisation.

    Shapes:
        - **input:** images :math:`(B, 3, 8H, 8W)`
        - **output:** features :math:`(B, C, H, W)`
    """

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"'channels' must be a positive int (got {channels!r})")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.trunk = resnet18(dilate=(True, True), width=channels / _STAGE3_CHANNELS)
        if self.trunk.channels[3] != channels:
            raise ValueError(f"'channels'={channels} is not reachable as a ResNet-18 "
                             f"stage-3 width (got {self.trunk.channels[3]})")
        self.channels = channels
        self.eval()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.trunk(images, num_stages=3).stage3


@functools.lru_cache(maxsize=8)
def _cached_feature_map(source_key: tuple, height: int, width: int, channels: int,
                        batch: int, seed: int) -> Tensor:
    source = dict(source_key)
    images = load_images(source, batch, (STRIDE * height, STRIDE * width), seed=seed)
    features = FeatureExtractor(channels, seed=seed)(images)
    if tuple(features.shape[-2:]) != (height, width):
        raise RuntimeError(f"the extractor gave a {tuple(features.shape[-2:])} map, "
                           f"expected {(height, width)}")
    return features.contiguous(memory_format=torch.channels_last)


def feature_map(source: dict[str, Any], height: int, width: int, channels: int, batch: int,
                seed: int = 0) -> Tensor:
    """``[batch, channels, height, width]`` features of the source's first frames
    (channels-last, computed once per process and size; do not modify it)."""
    key = tuple(sorted((k, v) for k, v in source.items() if k != "note"))
    return _cached_feature_map(key, int(height), int(width), int(channels), int(batch),
                               int(seed))
