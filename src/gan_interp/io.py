"""File output in one place: atomic writes (temp file + rename) and JSON that never fails.

Every file the project writes for others to read - caches, splits, checkpointed nets, downloads,
summaries - goes through these helpers, so a crash, a full disk or a parallel sweep job never leaves
a half-written file behind: the content lands in a temporary sibling first and is renamed into place
with :func:`os.replace` (atomic on POSIX within one file system).

* :func:`atomic_path` - context manager yielding a temporary path next to ``dest``; on success the
  temp file (or folder) replaces ``dest``, on failure it is removed;
* :func:`write_bytes` / :func:`write_text` / :func:`write_json` / :func:`torch_save` / :func:`save_png` -
  atomic writers (a PNG keeps its caption: :func:`png_caption`);
* :func:`jsonable` - tensors, numpy values, paths and named tuples as plain Python (NaN/inf -> null).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"  # temp siblings are named .<name>.tmp-XXXX (hidden; easy to sweep up)
PNG_CAPTION_KEY = "Description"  # the PNG text chunk that holds an image's caption (save_png / png_caption)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a fresh temp path next to ``dest``; rename it onto ``dest`` when the block succeeds.

    ``directory=True`` yields an empty temp folder instead of a file path. If another process
    created a folder ``dest`` first, theirs is kept (``FileExistsError``/``OSError`` from the rename
    is swallowed only in that case). The temp path is always removed on failure.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{TMP_MARK}", dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}{TMP_MARK}", dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (directory and dest.is_dir()):
                raise
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically; returns ``dest``."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(obj: Any, dest: str | os.PathLike, indent: int | None = 1) -> Path:
    """``json.dumps(jsonable(obj))`` written atomically to ``dest``; returns ``dest``."""
    return write_text(dest, json.dumps(jsonable(obj), indent=indent))


def torch_save(obj: Any, dest: str | os.PathLike) -> Path:
    """``torch.save(obj, dest)`` atomically; returns ``dest``."""
    import torch

    with atomic_path(dest) as tmp:
        torch.save(obj, tmp)
    return Path(dest)


def save_png(image: Any, dest: str | os.PathLike, caption: str = "") -> Path:
    """An image tensor (``[C, H, W]`` in ``[0, 1]``; a batch is tiled) as a PNG, atomically, with the same
    pixels as :func:`torchvision.utils.save_image`; ``caption`` (what rows and columns are) is stored in
    the file's ``Description`` text chunk, where :func:`png_caption` (the review page) reads it back."""
    import torch
    from PIL import Image, PngImagePlugin
    from torchvision.utils import make_grid

    grid = make_grid(image.detach())
    arr = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8)
    info = PngImagePlugin.PngInfo()
    if caption:
        info.add_itxt(PNG_CAPTION_KEY, caption)
    with atomic_path(dest) as tmp:
        Image.fromarray(arr.numpy()).save(tmp, format="PNG", pnginfo=info)
    return Path(dest)


def png_caption(path: str | os.PathLike) -> str:
    """The caption :func:`save_png` stored in a PNG (``""`` if none or unreadable); reads only the header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return str(im.text.get(PNG_CAPTION_KEY, "")) if hasattr(im, "text") else ""
    except (OSError, SyntaxError, ValueError):
        return ""


def jsonable(obj: Any) -> Any:
    """Plain Python for ``json.dumps``: tensors/numpy -> numbers and lists, NaN/inf -> None,
    paths -> str, named tuples -> dicts of their fields, tuples -> lists, keys -> str."""
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch.Tensor (no torch import needed)
        obj = obj.detach().cpu()
        return jsonable(obj.item() if obj.ndim == 0 else obj.tolist())
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):  # named tuple, e.g. study.MeanSD
        return {k: jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    """The JSON content of ``path``."""
    return json.loads(Path(path).read_text())
