r"""The graph classifier every conv and graph kind of the superpixel benchmark uses."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import BatchNorm, global_mean_pool

from pyg_hgconv.nn.conv.registry import GraphConvStep, GraphInputs
from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph

__all__ = ["GraphClassifier"]


class GraphClassifier(nn.Module):
    r"""Node features :math:`[\text{intensity}, x / W, y / H]` -> ``Linear`` ->
    ``num_layers`` x (registry graph conv, BatchNorm, ReLU) -> global mean
    pooling -> ``Linear`` -> ReLU -> ``Linear`` to the classes.

    Args:
        conv (str): the registry graph conv of every layer.
        learned_clustering (bool): the input is a batch of images ``[B, 1, H, W]``
            clustered by the model's own :class:`~pyg_hgconv.ImageToGroupGraph`
            (learned embedding and scales, trained through the classifier;
            centres sampled as in evaluation, ``train_sampling='seeded'``);
            otherwise a PyG batch of graphs (``x``, ``pos``, the edges the conv
            reads; ``edge_attr``, when present, gives GMM and Spline their
            pseudo-coordinates).
        width (int): channels of the graph convs.
        num_layers (int): graph conv layers.
        num_classes (int): outputs.
        num_groups (int): groups per image of the learned clustering.
        image_size (tuple): ``(H, W)`` that normalises the positions.
        conv_kwargs (dict, optional): extra arguments of the conv.
    """

    def __init__(self, conv: str, learned_clustering: bool = False, width: int = 48,
                 num_layers: int = 3, num_classes: int = 10, num_groups: int = 75,
                 image_size: tuple[int, int] = (28, 28), conv_kwargs: dict | None = None):
        super().__init__()
        self.conv_name = conv
        self.image_size = image_size
        self.cluster = None
        if learned_clustering:
            # built on a side stream of the random generator: the classifier below
            # starts from the same weights (and the run from the same generator
            # state) whatever the graph kind, so that the kinds compare seed by seed
            with torch.random.fork_rng():
                self.cluster = ImageToGroupGraph(1, num_groups=num_groups, embed_channels=8,
                                                 train_sampling="seeded")
        self.lin_in = nn.Linear(3, width)
        self.convs = nn.ModuleList(GraphConvStep(conv, width, width, **(conv_kwargs or {}))
                                   for _ in range(num_layers))
        self.norms = nn.ModuleList(BatchNorm(width) for _ in range(num_layers))
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, batch) -> Tensor:
        if self.cluster is not None:
            graph = self.cluster(batch, as_batch=False)
            inputs = GraphInputs(graph)
        else:
            graph = batch
            inputs = GraphInputs(graph, pseudo=getattr(graph, "edge_attr", None))
        h, w = self.image_size
        pos = graph.pos / graph.pos.new_tensor([max(w - 1, 1), max(h - 1, 1)])
        intensity = graph.x.view(graph.x.size(0), -1)[:, :1].to(pos.dtype)
        z = self.lin_in(torch.cat([intensity, pos], dim=1))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            z = norm(conv(z, inputs)).relu()
        num_graphs = graph.num_images if hasattr(graph, "num_images") else graph.num_graphs
        return self.head(global_mean_pool(z, graph.batch, size=num_graphs))

