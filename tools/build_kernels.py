"""Build the optional fused CPU kernels into the packages' ``_lib`` folders.

* ``tvconv/csrc/per_pixel_conv.cpp`` -> ``tvconv/_lib/tvconv_kernels.so``
  (TVConv's per-pixel convolution, :mod:`tvconv.fused`);
* ``pyg_hgconv/csrc/*.cpp`` (and the headers they share) ->
  ``pyg_hgconv/_lib/pyg_hgconv_kernels.so`` (HG-Conv's clustering: the whole
  no-grad clustering of a batch, :mod:`pyg_hgconv.nn.pool.fused_clustering`, its
  embedding, :mod:`pyg_hgconv.nn.pool.fused_embedding`, its importance map and
  centre samplers, :mod:`pyg_hgconv.nn.pool.fused_importance`
  and :mod:`pyg_hgconv.nn.pool.fused_sampling`, and the separate steps: the
  group adjacency and its centroid-rule edges,
  :mod:`pyg_hgconv.nn.pool.fused_adjacency`, the SLIC iterations,
  :mod:`pyg_hgconv.nn.pool.fused_slic`, the coordinate form of the assignment,
  :mod:`pyg_hgconv.nn.pool.fused_coo`, and pooling and unpooling on
  channels-last maps, :mod:`pyg_hgconv.nn.pool.fused_pooling`).

``make`` runs this after installing the package; it needs a C++ compiler (the
one that built the PyG extensions). Without a built library the code using it
falls back to its pure-PyTorch implementation (``tvconv.fused.BACKEND`` and
``pyg_hgconv.nn.pool.kernels.BACKEND`` say which one is in use). Run
``python tools/build_kernels.py`` by hand after changing a C++ source or the
installed torch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: library name -> (sources, output folder)
KERNELS = {
    "tvconv_kernels": ((ROOT / "tvconv" / "csrc" / "per_pixel_conv.cpp",),
                       ROOT / "tvconv" / "_lib"),
    "pyg_hgconv_kernels": (tuple(sorted((ROOT / "pyg_hgconv" / "csrc").glob("*.cpp"))),
                           ROOT / "pyg_hgconv" / "_lib"),
}


def build(name: str, sources: tuple[Path, ...], lib_dir: Path, verbose: bool) -> None:
    import torch
    from torch.utils import cpp_extension

    lib_dir.mkdir(parents=True, exist_ok=True)
    stamp = lib_dir / "torch_version.txt"
    stamp.unlink(missing_ok=True)
    cpp_extension.load(name=name, sources=[str(source) for source in sources],
                       build_directory=str(lib_dir),
                       extra_cflags=["-O3", "-march=native", "-fopenmp"],
                       extra_ldflags=["-fopenmp"], is_python_module=False, verbose=verbose)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(torch.__version__ + "\n")
    tmp.replace(stamp)
    print(f"built {lib_dir / (name + '.so')} for torch {torch.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show the compiler's output")
    parser.add_argument("--only", choices=sorted(KERNELS), action="append",
                        help="build only this library (repeatable; default: all)")
    args = parser.parse_args(argv)
    for name in args.only or KERNELS:
        sources, lib_dir = KERNELS[name]
        build(name, sources, lib_dir, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
