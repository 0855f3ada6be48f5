"""TVConv's layout-specific data sets: aligned faces (ORL) and retinal fundus images (DRIVE).

They share the image-dataset conventions of :mod:`pyg_hgconv.datasets.base`
(items are tuples of tensors, a local data root, seeded splits).
"""
from .drive import DRIVE
from .orl_faces import ORLFaces
from .pairs import verification_pairs

__all__ = ["DRIVE", "ORLFaces", "verification_pairs"]
