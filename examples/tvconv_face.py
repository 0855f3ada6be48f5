"""TVConv in a MobileNetV2 on aligned faces (ORL), and its learned affinity maps.

TVConv (translation-variant convolution) gives every pixel its own depthwise
3x3 kernel, generated from a few learned *affinity maps* (initialised to 1):
on aligned faces the layout is the same in every image, so the kernels can
specialise to eyes, nose and contour. The example trains
`tvconv.models.mobilenet_v2(width_mult, conv='tvconv')` with AM-Softmax for a
few steps on the ORL training split (the project's one training loop,
`benchmarks.common.training.fit`) and plots the affinity maps of the TVConv
layers from shallow to deep (the TVConv paper's Fig. 6, via `tvconv.viz`).

A few steps only move the maps slightly away from their constant start (each
map is drawn on its own colour scale, so the first structure is visible); the
face contours of the paper's Fig. 6 need a full training run (see the
benchmarks). It writes

* `tvconv_face_affinity.png`: affinity maps, one column per layer.

Run:  python examples/tvconv_face.py [--size 96] [--steps 4] [--out docs/figures]
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import _common
import torch
from torch import nn

from benchmarks.common.training import TrainConfig, fit
from pyg_hgconv.datasets import HeterogeneousScenes, has_dataset
from tvconv import tvconv_layers
from tvconv.datasets import ORLFaces
from tvconv.models import AMSoftmax, mobilenet_v2
from tvconv.viz import plot_affinity_maps

NAME = "tvconv_face"


class FaceClassifier(nn.Module):
    """Backbone + AM-Softmax head; ``forward(x, labels)`` returns the training loss."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = AMSoftmax(backbone.embedding_dim, num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x), labels)


def load_faces(size: int, root):
    """The ORL training split at ``size x size`` (grey), or generated grey images
    with 8 pseudo-identities when ORL is absent."""
    if has_dataset("orl_faces", root):
        faces = ORLFaces(root, split="train", size=(size, size))
        return faces, faces.num_classes, f"ORL faces, {len(faces)} training images"
    print(f"ORL faces not found under the data root ({root or 'default'}): training on "
          "generated images instead (their affinity maps show no face layout)")
    scenes = HeterogeneousScenes(num_images=32, size=(size, size))
    items = [(scenes[i][0].mean(0, keepdim=True), torch.tensor(i % 8)) for i in range(32)]
    return items, 8, "generated HeterogeneousScenes images (grey)"


def main(argv: list[str] | None = None) -> dict:
    parser = _common.example_parser(NAME, __doc__)
    parser.add_argument("--size", type=int, default=96,
                        help="input size (the paper: 96x96); a multiple of 16")
    parser.add_argument("--width", type=float, default=0.1,
                        help="MobileNetV2 width multiplier (paper: 0.1 - 1.0)")
    parser.add_argument("--steps", type=int, default=4, help="training steps (0: no training)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--max-layers", type=int, default=6,
                        help="TVConv layers shown, evenly spaced over depth")
    args = parser.parse_args(argv)
    if args.size < 16 or args.size % 16:
        parser.error(f"--size must be a multiple of 16 (got {args.size})")
    out = _common.output_dir(args.out)
    torch.manual_seed(0)

    faces, num_classes, source = load_faces(args.size, args.data_root)
    backbone = mobilenet_v2(args.width, "tvconv", input_size=args.size, in_channels=1)
    model = FaceClassifier(backbone, num_classes)
    layers = tvconv_layers(backbone)
    print(f"data: {source}; MobileNetV2 x{args.width} with {len(layers)} TVConv layers, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")

    if args.steps > 0:
        config = TrainConfig(epochs=1, batch_size=args.batch_size, optimizer="sgd",
                             lr=args.lr, max_steps_per_epoch=args.steps)
        with tempfile.TemporaryDirectory(prefix="tvconv_face_") as run_dir:
            result = fit(model, faces, lambda m, batch: m(*batch), config, Path(run_dir))
        print(f"trained {result.steps} steps: mean AM-Softmax loss {result.final_loss:.3f}")
    moved = max(float((layer.affinity_maps.detach() - 1).abs().max()) for _, layer in layers)
    print(f"the affinity maps moved by up to {moved:.3g} from their initial value 1")

    path = plot_affinity_maps(
        backbone, out / f"{NAME}_affinity.png", max_layers=args.max_layers, dpi=args.dpi,
        title=f"TVConv affinity maps after {args.steps} steps (shallow -> deep)")
    print(f"wrote {path}")
    return {"files": [path], "moved": moved, "source": source, "model": model}


if __name__ == "__main__":
    main()
