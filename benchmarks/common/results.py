"""The results layer: atomic files, the resumable result store, Markdown reports.

Every benchmark command writes its measurements through a :class:`ResultStore`,
which owns ``<out>/results.json``::

    {
      "format": 1,
      "config": {...},            # the protocol of the current run (see below)
      "fingerprint": "3f2a...",   # config_fingerprint(config)
      "key_fields": ["conv", "size"],
      "environment": {...},       # environment_info() of the latest run
      "records": [ {"conv": "gcn", "size": 64, "time_ms": 1.2,
                    "_fingerprint": "3f2a...", "_measured_at": "2025-..."}, ... ]
    }

One record per measured cell (a model, a conv at one size, ...), identified by
its *key* (the values of ``key_fields``). Every write replaces the whole file
atomically (temporary file in the same directory, ``fsync``, ``os.replace``),
so an interrupted run never leaves a half-written file behind, and a re-run
skips every cell that :meth:`ResultStore.done` reports as finished.

Resume rule
-----------
A record is reused only when it was measured under the same *protocol*:
its ``_fingerprint`` must equal :func:`config_fingerprint` of the current
run's ``config``. The fingerprint is a hash over the whole config, except the
top-level keys in :data:`VOLATILE_CONFIG_KEYS` (where results go and whether
to start over, never *what* is measured). Everything that changes what a
number means -- schedule, sizes, seeds, thread count, device, data root,
a command's ``protocol_version`` -- therefore belongs in ``config`` and
invalidates old records when it changes. Library versions, the git commit and
timestamps are *not* part of it: they are recorded in ``environment`` (and each
record carries its ``_measured_at`` time) so that a library upgrade does not
silently throw away hours of measurements; bump ``protocol_version`` in the
command's config when a code change makes old numbers incomparable.

Records that fail the rule are never deleted: the previous file is copied to
``results.json.stale-<UTC time>`` before the new one is written. To keep
several selections of one command in one file (``--study faces`` and
``--study drive``), put the selector in ``key_fields`` and in the records,
not in ``config``.

A store assumes one writer per directory (in a distributed run: rank 0).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyg_hgconv.io.atomic import atomic_open, atomic_write_bytes, atomic_write_text

__all__ = [
    "RESERVED_FIELDS",
    "VOLATILE_CONFIG_KEYS",
    "ResultStore",
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "config_fingerprint",
    "environment_info",
    "markdown_table",
    "run_cells",
    "to_jsonable",
    "utc_now",
    "write_report",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike

#: Top-level config keys that are ignored by :func:`config_fingerprint`:
#: they say where results go or how the run is driven, not what is measured.
VOLATILE_CONFIG_KEYS = frozenset(
    {"environment", "timestamp", "utc_time", "started_at", "out", "out_dir", "fresh", "progress"}
)

#: Record fields that :class:`ResultStore` sets itself.
RESERVED_FIELDS = ("_fingerprint", "_measured_at")

#: Version of the ``results.json`` layout.
RESULTS_FORMAT = 1

#: Repository root (``benchmarks/common/results.py`` -> ``<repo>``).
_REPO_ROOT = Path(__file__).resolve().parents[2]


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with seconds, e.g. ``2025-01-31T12:00:00Z``."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------
# atomic writers
# --------------------------------------------------------------------------------------
def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` with :func:`to_jsonable` and write it to ``path`` atomically.

    The object is serialised completely *before* the file is opened, so an
    object that cannot be serialised raises ``TypeError`` and leaves ``path``
    untouched. The output is strict JSON (no ``NaN``/``Infinity`` tokens).
    """
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """:func:`torch.save` ``obj`` to ``path`` atomically (see :func:`atomic_open`)."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into plain JSON types.

    * mappings -> ``dict`` with ``str`` keys, lists/tuples -> ``list``, sets -> sorted ``list``;
    * NumPy scalars/arrays and torch tensors -> Python numbers/lists;
    * dataclasses -> ``dict``, paths -> ``str``;
    * non-finite floats (``nan``, ``inf``) -> ``None`` (strict JSON has no such numbers;
      ``None`` reads as "no finite value").

    Raises:
        TypeError: for any other type, naming it.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    # NumPy and torch without importing them here.
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot store a value of type {type(obj).__name__} in JSON: {obj!r}")


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """Return a short stable hash of ``config`` without :data:`VOLATILE_CONFIG_KEYS`.

    The hash is the first 16 hex digits of SHA-256 over the canonical JSON of
    the config (sorted keys, :func:`to_jsonable` values), so ``(1, 2)`` and
    ``[1, 2]`` or two key orders give the same fingerprint.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    stable = {k: v for k, v in to_jsonable(config).items() if k not in VOLATILE_CONFIG_KEYS}
    blob = json.dumps(stable, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# result store
# --------------------------------------------------------------------------------------
class ResultStore:
    """The resumable record store behind ``<out_dir>/results.json``.

    Args:
        out_dir: directory of the run; created if missing.
        config: the protocol of this run (JSON-able mapping). Records measured
            under another protocol are not reused (see the module docstring for
            the rule and :data:`VOLATILE_CONFIG_KEYS`).
        key_fields: the record fields that identify one measured cell, e.g.
            ``("conv", "size")``.
        environment: optional :func:`environment_info` stored at the top level.
        fresh: ignore (move aside) every previous record, e.g. for ``--fresh``.
        filename: the file in ``out_dir`` (default ``results.json``), for a
            command that keeps a second store beside its results.

    Example::

        store = ResultStore(out, config, key_fields=("conv", "size"), environment=env)
        for conv in convs:
            if not store.done(conv=conv, size=64):
                store.add({"conv": conv, "size": 64, **measure(conv, 64)})
        print(markdown_table(store.records, [("conv", "Conv"), ("time_ms", "ms", ".2f")]))

    Attributes:
        path: ``out_dir / filename`` (``"results.json"`` unless ``filename`` is given).
        fingerprint: :func:`config_fingerprint` of ``config``.
        stale_path: where previous records that could not be reused were
            copied to, or ``None``.
        num_stale: how many previous records were not reused.
    """

    filename = "results.json"

    def __init__(
        self,
        out_dir: PathLike,
        config: Mapping[str, Any],
        key_fields: Sequence[str],
        *,
        environment: Mapping[str, Any] | None = None,
        fresh: bool = False,
        filename: str | None = None,
    ) -> None:
        if filename is not None:
            if not isinstance(filename, str) or not filename or "/" in filename:
                raise ValueError(f"filename must be a plain file name, got {filename!r}")
            self.filename = filename
        if isinstance(key_fields, str) or not isinstance(key_fields, Sequence):
            raise TypeError("key_fields must be a sequence of field names, e.g. ('conv', 'size')")
        if len(key_fields) == 0 or not all(isinstance(k, str) and k for k in key_fields):
            raise ValueError(f"key_fields must be non-empty field names, got {key_fields!r}")
        if len(set(key_fields)) != len(key_fields):
            raise ValueError(f"key_fields contains duplicates: {key_fields!r}")
        reserved = set(key_fields) & set(RESERVED_FIELDS)
        if reserved:
            raise ValueError(f"key_fields may not use the reserved fields {sorted(reserved)}")
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")

        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / self.filename
        self.key_fields: tuple[str, ...] = tuple(key_fields)
        self.config: dict[str, Any] = to_jsonable(dict(config))
        self.fingerprint = config_fingerprint(config)
        self.environment = to_jsonable(dict(environment)) if environment is not None else None
        self.stale_path: Path | None = None
        self.num_stale = 0
        self._records: list[dict[str, Any]] = []
        self._load(fresh=fresh)
        self._write()

    # -- loading -----------------------------------------------------------------------
    def _load(self, fresh: bool) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
            records = data["records"]
            if not isinstance(records, list):
                raise TypeError("'records' is not a list")
        except (ValueError, KeyError, TypeError) as exc:  # corrupt or foreign file
            self.stale_path = self._move_aside(raw)
            log.warning("%s is not a results file (%s); moved it to %s", self.path, exc,
                        self.stale_path)
            return

        kept: dict[tuple[str, ...], dict[str, Any]] = {}
        stale = 0
        for rec in records:
            if (
                fresh
                or not isinstance(rec, dict)
                or rec.get("_fingerprint") != self.fingerprint
                or any(k not in rec for k in self.key_fields)
            ):
                stale += 1
                continue
            key = self._key(rec)
            if key in kept:
                stale += 1
            kept[key] = rec
        self._records = list(kept.values())
        self.num_stale = stale
        if stale:
            self.stale_path = self._move_aside(raw)
            reason = ("are set aside (--fresh)" if fresh
                      else "were measured under another configuration")
            log.warning("%d of %d records in %s %s; the previous file is kept as %s",
                        stale, len(records), self.path, reason, self.stale_path)

    def _move_aside(self, raw: bytes) -> Path:
        stamp = utc_now().replace(":", "").replace("-", "")
        target = self.path.with_name(f"{self.filename}.stale-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.filename}.stale-{stamp}-{n}")
            n += 1
        # Copy first, rewrite afterwards: a crash in between loses nothing.
        return atomic_write_bytes(target, raw)

    # -- keys ----------------------------------------------------------------------------
    def _key(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(
            json.dumps(to_jsonable(record[k]), sort_keys=True) for k in self.key_fields
        )

    def _check_key(self, key: Mapping[str, Any]) -> tuple[str, ...]:
        if set(key) != set(self.key_fields):
            raise ValueError(
                f"expected exactly the key fields {list(self.key_fields)}, got {sorted(key)}"
            )
        return self._key(key)

    # -- public API ----------------------------------------------------------------------
    def done(self, **key: Any) -> bool:
        """Whether a reusable record with this key exists (``key`` = all key fields)."""
        return self.get(**key) is not None

    def get(self, **key: Any) -> dict[str, Any] | None:
        """Return a copy of the record with this key, or ``None``."""
        wanted = self._check_key(key)
        for rec in self._records:
            if self._key(rec) == wanted:
                return dict(rec)
        return None

    def add(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``record`` (replacing the one with the same key) and rewrite the file.

        The record must contain every key field; values are converted with
        :func:`to_jsonable`. ``_fingerprint`` and ``_measured_at`` are set here.
        Returns a copy of the stored record.
        """
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a mapping, got {type(record).__name__}")
        missing = [k for k in self.key_fields if k not in record]
        if missing:
            raise ValueError(f"record is missing the key fields {missing}: {dict(record)!r}")
        reserved = [k for k in RESERVED_FIELDS if k in record]
        if reserved:
            raise ValueError(f"record may not set the reserved fields {reserved}")
        rec = to_jsonable(dict(record))
        rec["_fingerprint"] = self.fingerprint
        rec["_measured_at"] = utc_now()
        key = self._key(rec)
        for i, old in enumerate(self._records):
            if self._key(old) == key:
                self._records[i] = rec
                break
        else:
            self._records.append(rec)
        self._write()
        return dict(rec)

    @property
    def records(self) -> list[dict[str, Any]]:
        """Copies of the stored records, in insertion order."""
        return [dict(r) for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, records={len(self)})"

    def _write(self) -> None:
        atomic_write_json(
            self.path,
            {
                "format": RESULTS_FORMAT,
                "config": self.config,
                "fingerprint": self.fingerprint,
                "key_fields": list(self.key_fields),
                "environment": self.environment,
                "records": self._records,
            },
        )


def run_cells(
    store: ResultStore,
    cells: Iterable[Mapping[str, Any]],
    measure: Callable[[dict[str, Any]], Mapping[str, Any]],
    *,
    desc: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Measure every cell that ``store`` does not have yet; return all their records.

    This is the resume loop every command shares: for each cell (a JSON-able
    mapping holding at least the store's key fields) it returns the stored
    record when :meth:`ResultStore.done`, else calls ``measure(cell)`` and
    stores ``{**cell, **measure(cell)}`` at once. An interrupt therefore loses
    only the cell being measured. Shows a tqdm bar (``progress=False`` hides it).
    """
    from tqdm.auto import tqdm

    cells = [dict(c) for c in cells]
    out: list[dict[str, Any]] = []
    with tqdm(cells, desc=desc, unit="cell", disable=not progress, dynamic_ncols=True) as bar:
        for cell in bar:
            missing = [k for k in store.key_fields if k not in cell]
            if missing:
                raise ValueError(f"cell {cell!r} is missing the key fields {missing}")
            key = {k: cell[k] for k in store.key_fields}
            label = " ".join(str(v) for v in key.values())
            previous = store.get(**key)
            if previous is not None:
                bar.set_postfix_str(f"{label} (cached)")
                out.append(previous)
                continue
            bar.set_postfix_str(label)
            result = measure(cell)
            if not isinstance(result, Mapping):
                raise TypeError(f"measure() must return a mapping, got {type(result).__name__}")
            out.append(store.add({**cell, **result}))
    return out


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------
Column = tuple[str, str] | tuple[str, str, "str | Callable[[Any], str] | None"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format_cell(value: Any, fmt: str | Callable[[Any], str] | None, missing: str) -> str:
    if _is_missing(value):
        return missing
    if callable(fmt):
        text = fmt(value)
    elif fmt and _is_number(value):
        text = format(value, fmt)
    else:
        text = str(value)
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    missing: str = "-",
) -> str:
    """Format ``records`` as a GitHub-flavoured Markdown table.

    Args:
        records: one row per mapping.
        columns: ``(field, header)`` or ``(field, header, fmt)`` per column,
            where ``fmt`` is a format spec applied to numbers (``".2f"``,
            ``".1%"``, ``",d"``; strings are shown as they are) or a callable
            ``value -> str``.
        missing: text for absent, ``None`` or NaN values.

    Columns whose present values are all numbers are right-aligned; cells are
    padded so the table is readable as plain text. ``|`` in cells is escaped.
    The result has no trailing newline.
    """
    cols: list[tuple[str, str, Any]] = []
    for col in columns:
        if not isinstance(col, (tuple, list)) or len(col) not in (2, 3):
            raise ValueError(f"each column must be (field, header[, fmt]), got {col!r}")
        field, header = col[0], col[1]
        fmt = col[2] if len(col) == 3 else None
        if fmt is not None and not (isinstance(fmt, str) or callable(fmt)):
            raise TypeError(f"fmt of column {field!r} must be a format spec or callable")
        cols.append((field, str(header), fmt))
    if not cols:
        raise ValueError("columns must not be empty")

    body = [[_format_cell(rec.get(f), fmt, missing) for f, _, fmt in cols] for rec in records]
    headers = [h.replace("|", "\\|") for _, h, _ in cols]
    right = []
    for f, _, _ in cols:
        present = [rec.get(f) for rec in records if not _is_missing(rec.get(f))]
        right.append(bool(present) and all(_is_number(v) for v in present))
    widths = [
        max([3, len(headers[j])] + [len(row[j]) for row in body]) for j in range(len(cols))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rules = [
        ("-" * (w - 1) + ":") if r else (":" + "-" * (w - 1))
        for w, r in zip(widths, right, strict=True)
    ]
    sep = "| " + " | ".join(rules) + " |"
    return "\n".join([line(headers), sep, *(line(row) for row in body)])


def write_report(
    out_dir: PathLike,
    title: str,
    config: Mapping[str, Any],
    tables: Mapping[str, str],
    *,
    environment: Mapping[str, Any] | None = None,
    plots: Mapping[str, PathLike] | None = None,
    notes: str | None = None,
    filename: str = "results.md",
) -> Path:
    """Write the human-readable report ``<out_dir>/results.md`` atomically.

    Layout: ``# title``, the optional ``notes`` paragraph, one ``## section``
    per entry of ``tables`` (Markdown text, usually from :func:`markdown_table`),
    one ``## Plots`` section embedding each PNG of ``plots`` (caption -> path;
    paths are written relative to ``out_dir``), then the configuration and the
    environment as JSON blocks. Returns the path of the report.
    """
    out_dir = Path(out_dir)
    parts = [f"# {title}", ""]
    if notes:
        parts += [notes.strip(), ""]
    for section, table in tables.items():
        parts += [f"## {section}", "", table.rstrip(), ""]
    if plots:
        parts += ["## Plots", ""]
        for caption, path in plots.items():
            rel = os.path.relpath(Path(path).resolve(), out_dir.resolve())
            parts += [f"![{caption}]({Path(rel).as_posix()})", ""]
    parts += ["## Configuration", "", "```json",
              json.dumps(to_jsonable(config), indent=2, allow_nan=False), "```", ""]
    if environment is not None:
        parts += ["## Environment", "", "```json",
                  json.dumps(to_jsonable(environment), indent=2, allow_nan=False), "```", ""]
    return atomic_write_text(out_dir / filename, "\n".join(parts))


# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------
def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                 capture_output=True, text=True, timeout=5, check=True)
            return out.stdout.strip() or None
    return platform.processor() or None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_REPO_ROOT), *args], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def environment_info(seed: int, threads: int) -> dict[str, Any]:
    """Describe the software and hardware a measurement was taken on.

    Returns a JSON-able dict with ``python``, ``torch``, ``torch_geometric``,
    ``torch_scatter``, ``torch_sparse``, ``torch_spline_conv``, ``torch_cluster``
    and ``numpy`` versions (``None`` when a package is absent), ``platform``,
    ``cpu`` (model name), ``logical_cores``, ``threads`` (requested),
    ``torch_threads`` (actual), ``omp_wait_policy``, ``cuda`` (GPU name or ``None``),
    ``tvconv_backend`` (``"fused"`` C++ kernels or the ``"pytorch"`` fallback) and
    ``tvconv_fallback_reason``, ``adjacency_backend`` (HG-Conv's group adjacency:
    ``"fused"`` C++ kernel or ``"pytorch"``) and ``adjacency_fallback_reason``,
    ``slic_backend`` (its SLIC iterations where no gradient is needed) and
    ``slic_fallback_reason``, ``clustering_backend`` (its whole clustering after
    the centre sampling in one op where no gradient is needed) and
    ``clustering_fallback_reason``, ``products_backend`` (HGConv's and
    FusedSplineConv's stacked transforms outside autograd: ``"onednn"`` or
    ``"matmul"``), ``products_fallback_reason`` and ``products_onednn_min_macs``, ``seed``,
    ``git_commit`` (``None`` outside a git checkout or before the first commit),
    ``git_dirty`` (uncommitted changes to tracked files) and ``utc_time``.
    """
    import torch

    from pyg_hgconv.nn.pool.fused_adjacency import backend_info as adjacency_backend
    from pyg_hgconv.nn.pool.fused_clustering import backend_info as clustering_backend
    from pyg_hgconv.nn.pool.fused_slic import backend_info as slic_backend
    from pyg_hgconv.utils.dense import backend_info as products_backend
    from tvconv.fused import backend_info

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": _package_version("torch-geometric"),
        "torch_scatter": _package_version("torch-scatter"),
        "torch_sparse": _package_version("torch-sparse"),
        "torch_spline_conv": _package_version("torch-spline-conv"),
        "torch_cluster": _package_version("torch-cluster"),
        "numpy": _package_version("numpy"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": int(threads),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cuda": cuda,
        **backend_info(),
        **adjacency_backend(),
        **slic_backend(),
        **clustering_backend(),
        **products_backend(),
        "seed": int(seed),
        "git_commit": commit or None,
        "git_dirty": None if status is None else bool(status),
        "utc_time": utc_now(),
    }
