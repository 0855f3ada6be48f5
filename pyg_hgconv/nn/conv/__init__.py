"""Graph convolutions on group graphs: :class:`HGConv` and the registry of the
convs that can fill its slot (:mod:`.registry`)."""
from .hg_conv import HGConv

__all__ = ["HGConv"]
