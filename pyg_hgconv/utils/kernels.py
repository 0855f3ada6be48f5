"""Loading an optional compiled library of custom ops (``make`` builds them), and
the memory-layout rule their kernels share.

Both fused CPU kernels of the project (HG-Conv's group adjacency in
``pyg_hgconv/_lib``, TVConv's per-pixel convolution in ``tvconv/_lib``) are
built by ``tools/build_kernels.py`` next to a ``torch_version.txt`` stamp and
fall back to pure PyTorch when they cannot be used; :func:`load_kernel_library`
is the one place that decides.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def reads_channels_last(x: torch.Tensor) -> bool:
    """Whether a fused kernel reads ``x`` ``[B, C, H, W]`` as channels-last rows (and
    returns channels-last outputs): ``x`` is stored channels-last and not also
    contiguous, as a map of one channel or one pixel is (the C++ sources' rule)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def load_kernel_library(library: Path, env_var: str) -> str | None:
    """Load ``library`` into ``torch.ops``; return why it is not used, or ``None``
    when it is loaded.

    Not used when the environment sets ``env_var=0``, when the file is missing,
    when its stamp names another torch version than the running one (a library
    built for another torch can crash), or when loading fails.
    """
    if os.environ.get(env_var, "1") == "0":
        return f"disabled by {env_var}=0"
    if not library.exists():
        return f"not built ({library.relative_to(library.parents[2])} missing; run make)"
    stamp = library.with_name("torch_version.txt")
    built_for = stamp.read_text().strip() if stamp.exists() else "unknown"
    if built_for != torch.__version__:
        return f"built for torch {built_for}, running {torch.__version__} (rebuild: make)"
    try:
        torch.ops.load_library(str(library))
    except (OSError, RuntimeError) as error:
        return f"failed to load: {error}"
    return None
