r"""From a feature map to a group graph and back, in the order of the data path:

=============================  ===================================================
module                         step (paper)
=============================  ===================================================
:mod:`.importance`             importance map and active focus (Sec. 4.1, Eqs. 11-13)
:mod:`.sampling`               cluster-centre samplers (Table 4)
:mod:`.tiling`                 the tiled, block-sparse assignment :math:`S`
:mod:`.slic`                   differentiable SLIC on tiles (Algorithm 1)
:mod:`.adjacency`              :math:`\hat{A}^\delta = S^\top A^\delta S`, noise
                               cancelling, strongest direction (Eqs. 4, 7)
:mod:`.pooling`                pooling (Eq. 5) and unpooling (Eq. 6)
:mod:`.image_to_group_graph`   :class:`ImageToGroupGraph`, the learnable module that
                               wires the steps together
:mod:`.kernels`                the compiled library of the fused CPU kernels below
:mod:`.fused_clustering`       steps 3-5 of :class:`ImageToGroupGraph` for a batch
                               in one op (no gradient)
:mod:`.fused_embedding`        the clustering embedding (1x1 conv) in one op,
                               batch-invariant (no gradient)
:mod:`.fused_importance`       the importance map in one op (no gradient)
:mod:`.fused_sampling`         the centre samplers in one op, given their keys
:mod:`.fused_slic`             Algorithm 1's iterations in one op (no gradient)
:mod:`.fused_coo`              the coordinate form of :math:`S` (no gradient)
:mod:`.fused_pooling`          Eqs. 5-6 on channels-last maps (no gradient)
:mod:`.fused_adjacency`        Eq. 4's blocks (with gradient) and the centroid
                               rule's typed edges (no gradient)
=============================  ===================================================
"""
from .image_to_group_graph import ImageToGroupGraph
from .pooling import pool, unpool

__all__ = ["ImageToGroupGraph", "pool", "unpool"]
