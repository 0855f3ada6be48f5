"""Neural-network parts of HG-Conv, laid out like :mod:`torch_geometric.nn`:

* :mod:`.pool` -- feature map -> group graph (Sec. 4.1-4.3) and back (Eq. 6);
* :mod:`.conv` -- :class:`~pyg_hgconv.HGConv` (Eq. 3) and the registry of
  graph convs that can fill its slot;
* :mod:`.models` -- :class:`~pyg_hgconv.HGConvModule` (Eqs. 8-10), HG-ResNet,
  HG-ResUNet and their grid counterparts.
"""
