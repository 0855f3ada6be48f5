"""Shared plumbing of the examples: the command line, the output folder and the data.

Every example writes its PNGs to ``--out`` (default ``examples/out/<name>/``,
git-ignored); file names start with the example's name, so several examples
can share one folder such as ``docs/figures``. Real data come from
``pyg_hgconv.datasets`` under :func:`pyg_hgconv.datasets.data_root`
(``$PYG_HGCONV_DATA`` or ``../shared/data``; ``--data-root`` overrides it); when
they are missing an example falls back to generated images and says so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: the repository root (``benchmarks`` is importable only from here)
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout and shows defaults (except ``None``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def example_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--out``, ``--data-root`` and ``--dpi``; ``--help``
    shows the example's docstring."""
    parser = argparse.ArgumentParser(
        prog=f"python examples/{name}.py", description=(doc or "").strip(),
        formatter_class=_HelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "examples" / "out" / name,
                        help="folder the PNGs are written to (e.g. docs/figures)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="data root holding camvid/, roads/, orl_faces/ "
                             "(default: $PYG_HGCONV_DATA or ../shared/data)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of the PNGs")
    return parser


def size_arg(text: str) -> tuple[int, int]:
    """``argparse`` type of ``--size``: ``H,W`` or ``HxW`` or a single int (square)."""
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be H,W or an int (got {text!r})") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 8:
        raise argparse.ArgumentTypeError(f"size must be two ints >= 8 (got {text!r})")
    return values


def output_dir(path: Path) -> Path:
    """Create ``path`` and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def scene_frame(size: tuple[int, int], root: Path | None = None):
    """A road-scene frame: CamVid ``val`` frame 0 resized to ``size``, or, when CamVid
    is absent, a generated :class:`~pyg_hgconv.datasets.HeterogeneousScenes` image.

    Returns:
        ``(image float [3, H, W] in [0, 1], label int64 [H, W], description)``.
    """
    from pyg_hgconv.datasets import CamVid, HeterogeneousScenes, has_dataset

    if has_dataset("camvid", root):
        data = CamVid(root, split="val", size=size)
        image, label = data[0]
        return image, label, f"CamVid val frame {data.split_files()[0]}"
    print(f"CamVid not found under the data root ({root or 'default'}): using a generated "
          "HeterogeneousScenes image instead")
    image, label = HeterogeneousScenes(num_images=1, size=size)[0]
    return image, label, "generated HeterogeneousScenes image"
