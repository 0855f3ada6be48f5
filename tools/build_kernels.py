"""Build the optional fused CPU kernels of TVConv (``tvconv/csrc``) into ``tvconv/_lib``.

``make`` runs this after installing the package; it needs a C++ compiler (the
one that built the PyG extensions). Without the built library every TVConv path
falls back to the pure-PyTorch implementation (``tvconv.fused.BACKEND`` says
which one is in use). Run ``python tools/build_kernels.py`` by hand after
changing the C++ source or the installed torch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tvconv" / "csrc" / "per_pixel_conv.cpp"
LIB_DIR = ROOT / "tvconv" / "_lib"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show the compiler's output")
    args = parser.parse_args(argv)
    import torch
    from torch.utils import cpp_extension

    LIB_DIR.mkdir(parents=True, exist_ok=True)
    stamp = LIB_DIR / "torch_version.txt"
    stamp.unlink(missing_ok=True)
    cpp_extension.load(name="tvconv_kernels", sources=[str(SOURCE)],
                       build_directory=str(LIB_DIR),
                       extra_cflags=["-O3", "-march=native", "-fopenmp"],
                       extra_ldflags=["-fopenmp"],
                       is_python_module=False, verbose=args.verbose)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(torch.__version__ + "\n")
    tmp.replace(stamp)
    print(f"built {LIB_DIR / 'tvconv_kernels.so'} for torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
