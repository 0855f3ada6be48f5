"""Active focus: move HG-Conv's groups onto the roads of an aerial tile.

HG-Conv samples its cluster centres where the importance map is high. Active
focus (paper, Sec. 5.3 and supplementary D) adds a task attention map to it,

    C_focus = C_imp / max(C_imp) + alpha * C_attn        (Eq. 11, alpha = 10),

with the object-aware attention C_attn = P_road (Eq. 12), the road
probability of a coarse predictor. The example compares three clusterings of
the same tile: no focus, focus from a simple coarse predictor (a Gaussian
colour model of road / non-road fitted on training tiles, applied at 1/8
resolution), and focus from the ground-truth road mask (the ideal predictor).
It prints the fraction of cluster centres on road pixels for each and writes

* `active_focus_roads.png`: one row per setting: importance / focus map,
  sampled centres, clustering, summed adjacency.

Run:  python examples/active_focus_roads.py [--size 200] [--out docs/figures]
"""
from __future__ import annotations

import _common
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal
from torch_geometric.data import Batch

import pyg_hgconv as H
from pyg_hgconv import viz
from pyg_hgconv.datasets import HeterogeneousScenes, RoadTiles, has_dataset

NAME = "active_focus_roads"


def load_tiles(size: tuple[int, int], root, num_train: int):
    """``(image [3, H, W], road mask [H, W], train images [N, 3, H, W], train masks,
    description)``: a RoadTiles test tile, or generated scenes whose small objects
    play the roads when the road data are absent."""
    if has_dataset("roads", root):
        test = RoadTiles(root, split="test", size=size)
        train = RoadTiles(root, split="train", size=size)
        image, mask = test[0]
        pairs = [train[i] for i in range(min(num_train, len(train)))]
        description = f"RoadTiles test tile {test.split_files()[0]}"
    else:
        print(f"road tiles not found under the data root ({root or 'default'}): using "
              "generated HeterogeneousScenes images; their small objects play the roads")
        scenes = HeterogeneousScenes(num_images=num_train + 1, size=size)
        items = [scenes[i] for i in range(num_train + 1)]
        pairs = [(x, (y >= 3).long()) for x, y in items]
        (image, mask), pairs = pairs[0], pairs[1:]
        description = "generated HeterogeneousScenes image (objects = roads)"
    train_images = torch.stack([x for x, _ in pairs])
    train_masks = torch.stack([m for _, m in pairs])
    return image, mask.bool(), train_images, train_masks.bool(), description


class CoarseColourModel:
    """A coarse road predictor: one Gaussian colour model per class on ``stride x stride``
    average-pooled pixels, posterior P(road | colour), upsampled bilinearly."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, stride: int = 8):
        self.stride = stride
        colours, labels = self._coarse(images, masks)
        self.classes = []
        for value in (False, True):
            samples = colours[labels == value]
            if samples.size(0) < 4:
                raise ValueError("the training tiles need road and non-road pixels")
            cov = torch.cov(samples.t()) + 1e-4 * torch.eye(3)
            self.classes.append((MultivariateNormal(samples.mean(0), cov),
                                 samples.size(0) / colours.size(0)))

    def _coarse(self, images: torch.Tensor, masks: torch.Tensor):
        colours = F.avg_pool2d(images, self.stride, ceil_mode=True)
        fraction = F.avg_pool2d(masks[:, None].float(), self.stride, ceil_mode=True)
        return colours.permute(0, 2, 3, 1).reshape(-1, 3), (fraction > 0.5).reshape(-1)

    def road_probability(self, image: torch.Tensor) -> torch.Tensor:
        """``[3, H, W]`` -> road probability ``[1, 1, H, W]`` in ``[0, 1]``."""
        height, width = image.shape[1:]
        coarse = F.avg_pool2d(image[None], self.stride, ceil_mode=True)
        colours = coarse[0].permute(1, 2, 0)
        log_joint = torch.stack([model.log_prob(colours) + torch.log(torch.tensor(prior))
                                 for model, prior in self.classes])
        probability = torch.softmax(log_joint, dim=0)[1][None, None]
        return F.interpolate(probability, size=(height, width), mode="bilinear",
                             align_corners=False).clamp(0.0, 1.0)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.example_parser(NAME, __doc__)
    parser.add_argument("--size", type=_common.size_arg, default=(200, 200),
                        help="tile size H,W")
    parser.add_argument("--ratio", type=float, default=1 / 64,
                        help="groups per pixel (paper: 1/64)")
    parser.add_argument("--alpha", type=float, default=10.0,
                        help="attention weight alpha of Eq. 11 (paper: 10)")
    parser.add_argument("--train-tiles", type=int, default=12,
                        help="training tiles the coarse colour model is fitted on")
    args = parser.parse_args(argv)
    out = _common.output_dir(args.out)

    image, road, train_images, train_masks, source = load_tiles(
        args.size, args.data_root, args.train_tiles)
    print(f"input: {source}, {args.size[0]}x{args.size[1]}, "
          f"{road.float().mean():.1%} road pixels")

    predictor = CoarseColourModel(train_images, train_masks)
    coarse = predictor.road_probability(image)
    print(f"coarse colour predictor: mean P(road) {float(coarse[0, 0][road].mean()):.2f} on "
          f"road pixels, {float(coarse[0, 0][~road].mean()):.2f} elsewhere")
    ideal = F.avg_pool2d(road[None, None].float(), 3, stride=1, padding=1,
                         count_include_pad=False)  # soft edges

    to_groups = H.ImageToGroupGraph(ratio=args.ratio, learnable=False, alpha=args.alpha).eval()
    plain = to_groups(image[None])
    attention = H.object_attention(torch.cat([coarse, ideal]), 0)  # Eq. 12, [2, 1, H, W]
    focused = to_groups(image[None].expand(2, -1, -1, -1), attention=attention)
    graph = Batch.from_data_list([plain[0], focused[0], focused[1]])

    settings = ("no focus", "focus: coarse predictor", "focus: road mask")
    fractions = {}
    print("| setting | groups | centres on road |\n|---|---|---|")
    for i, setting in enumerate(settings):
        x, y = viz.center_coordinates(graph, i).unbind(1)
        fractions[setting] = float(road[y, x].float().mean())
        print(f"| {setting} | {int(graph[i].num_nodes)} | {fractions[setting]:.1%} |")

    path = viz.plot_group_panels(
        graph, out / f"{NAME}.png", images=[image] * 3, row_titles=settings,
        titles=("importance / focus map", "cluster centres", "clustering",
                "adjacency (summed)"), dpi=args.dpi)
    print(f"wrote {path}")
    return {"files": [path], "fractions": fractions, "graph": graph, "road": road,
            "source": source}


if __name__ == "__main__":
    main()
