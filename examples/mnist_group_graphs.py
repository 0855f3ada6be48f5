"""MNIST digits as PyG graphs, classified by a small HGConv network.

The PyG recipe, with a group-graph transform in place of `ToSLIC`:

1. `MNISTGroupGraphs` reads the local MNIST digits and turns every image into
   a graph with `ToGroupGraph(num_groups=75)` as its `pre_transform`
   (differentiable SLIC, parameter-free; cached under `--root/processed`);
2. PyG's `DataLoader` collates the graphs into batches;
3. two `HGConv` layers (one weight per direction type, the edges' `edge_type`),
   global mean pooling and a linear classifier train for `--epochs` epochs;
4. the test accuracy is printed, and one test digit's graph is drawn through
   networkx (nodes at the group centroids, edges coloured by direction):
   `mnist_group_graphs.png`.

Only the 10,000 MNIST test digits are local, split 8,000 / 1,000 / 1,000, so the
accuracy is not comparable with models trained on the 60,000 training digits.
The benchmark `python -m benchmarks.superpixels` compares the convs properly.

Run:  python examples/mnist_group_graphs.py [--epochs 1] [--limit 2000]
"""
from __future__ import annotations

import _common
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_mean_pool

from pyg_hgconv import HGConv, viz
from pyg_hgconv.datasets import MNISTGroupGraphs
from pyg_hgconv.transforms import ToGroupGraph

NAME = "mnist_group_graphs"


class DigitNet(torch.nn.Module):
    """Two HGConv layers on a digit's group graph, mean pooling, a linear classifier."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, num_classes: int = 10):
        super().__init__()
        self.conv1 = HGConv(in_channels + 2, hidden)
        self.conv2 = HGConv(hidden, hidden)
        self.lin = torch.nn.Linear(hidden, num_classes)

    def forward(self, data) -> torch.Tensor:
        # node features: the group's mean intensity and its centroid (in [0, 1])
        x = torch.cat([data.x, data.pos / 28.0], dim=1)
        x = self.conv1(x, data.edge_index, data.edge_type, data.edge_weight).relu()
        x = self.conv2(x, data.edge_index, data.edge_type, data.edge_weight).relu()
        return self.lin(global_mean_pool(x, data.batch))


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = sum(int((model(data).argmax(1) == data.y).sum()) for data in loader)
    return correct / len(loader.dataset)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.example_parser(NAME, __doc__)
    parser.add_argument("--root", default=None,
                        help="dataset folder (processed graphs); default: <out>/dataset")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first LIMIT digits of every split")
    parser.add_argument("--batch-size", type=int, default=64, help="graphs per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and shuffling")
    args = parser.parse_args(argv)
    out = _common.output_dir(args.out)
    root = args.root or out / "dataset"
    torch.manual_seed(args.seed)

    # add_img keeps the digit on the graph (as ToSLIC does) for the figure
    pre_transform = ToGroupGraph(num_groups=75, add_img=True)
    train = MNISTGroupGraphs(root, "train", data_root=args.data_root,
                             pre_transform=pre_transform, limit=args.limit)
    test = MNISTGroupGraphs(root, "test", data_root=args.data_root,
                            pre_transform=pre_transform, limit=args.limit)
    print(f"{train}: {train[0]}")
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=256)

    model = DigitNet(train.num_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for data in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data), data.y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * data.num_graphs
        print(f"epoch {epoch}: train loss {total / len(train):.4f}")
    test_accuracy = accuracy(model, test_loader)
    print(f"test accuracy {test_accuracy:.2%} ({len(test)} digits)")

    digit = test[0]
    graph_nx = viz.to_networkx(digit)
    print(graph_nx)
    figure = viz.plot_group_graph(graph_nx, out / f"{NAME}.png", image=digit.img[0],
                                  title=f"digit {int(digit.y)}: {digit.num_nodes} groups",
                                  dpi=args.dpi)
    print(f"wrote {figure}")
    return {"model": model, "train": train, "test": test, "accuracy": test_accuracy,
            "networkx": graph_nx, "files": [figure]}


if __name__ == "__main__":
    main()
