"""Read an offline W&B run (``run-<id>.wandb``) back without the network.

The ``.wandb`` file is a LevelDB-style log of protobuf ``Record`` messages: a 7-byte file header
(``:W&B``, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header
(crc32 uint32, length uint16, type uint8; types FULL=1, FIRST=2, MIDDLE=3, LAST=4). The reader in
recent wandb releases moved into the Go core, so this small one lets tests and the report read
logged losses, images and the run's name/group/tags.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Yield the serialized protobuf records of a ``.wandb`` file (a truncated tail is ignored)."""
    data = Path(path).read_bytes()
    ident, magic, _version = FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file (bad header)")
    pos, pending = FILE_HEADER.size, bytearray()
    while pos + CHUNK_HEADER.size <= len(data):
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < CHUNK_HEADER.size:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        pos += CHUNK_HEADER.size
        chunk = data[pos : pos + length]
        pos += length
        if len(chunk) < length or kind == 0:
            break
        if kind == FULL:
            yield bytes(chunk)
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            pending += chunk
            yield bytes(pending)
            pending = bytearray()


@dataclass
class OfflineRun:
    """What an offline run logged."""

    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per wandb.log call
    summary: dict[str, Any] = field(default_factory=dict)
    files_dir: Path | None = None
    # define_metric records: name or glob ("probes/*") -> {"step_metric": str, "summary": [min, max, last, ...]}
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    exit_code: int | None = None  # wandb.finish(exit_code=...): 0 finished, else failed (143/130: a signal)

    def series(self, key: str) -> list[Any]:
        """All logged values of one key, in order."""
        return [row[key] for row in self.history if key in row]

    def image_files(self, key_prefix: str = "") -> list[Path]:
        """PNG files the run stored for image keys starting with ``key_prefix``."""
        if self.files_dir is None:
            return []
        root = self.files_dir / "media" / "images"
        return sorted(p for p in root.rglob("*.png") if str(p.relative_to(root)).startswith(key_prefix))


def _item_key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _items_to_dict(items: Any) -> dict[str, Any]:
    """History/summary items -> dict; nested keys (media such as images) become nested dicts."""
    out: dict[str, Any] = {}
    for item in items:
        value = json.loads(item.value_json)
        if item.key:
            out[item.key] = value
            continue
        node = out
        *parents, leaf = list(item.nested_key)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _add_metric(metrics: dict[str, dict[str, Any]], m: Any) -> None:
    """One define_metric record (explicit, or expanded from a glob by W&B) into ``metrics``."""
    key = m.name or m.glob_name
    if not key:
        return
    entry = metrics.setdefault(key, {"step_metric": "", "summary": []})
    entry["step_metric"] = m.step_metric or entry["step_metric"]
    stats = [f.name for f, v in m.summary.ListFields() if v]
    entry["summary"] = sorted(set(entry["summary"]) | set(stats))


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Parse ``<run_dir>/run-*.wandb`` (``run_dir`` is ``.../wandb/offline-run-...``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    out = OfflineRun(files_dir=run_dir / "files")
    for raw in iter_records(files[0]):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            # a run may be re-sent with only some fields set: keep what is known
            out.name = rec.run.display_name or out.name
            out.group = rec.run.run_group or out.group
            out.tags = list(rec.run.tags) or out.tags
            out.config.update({_item_key(i): json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out.config.update({_item_key(i): json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            out.history.append(_items_to_dict(rec.history.item))
        elif kind == "summary":
            out.summary.update(_items_to_dict(rec.summary.update))
        elif kind == "metric":
            _add_metric(out.metrics, rec.metric)
        elif kind == "exit":
            out.exit_code = int(rec.exit.exit_code)
    return out


def find_offline_runs(root: str | Path) -> list[Path]:
    """All ``offline-run-*`` folders under ``root`` (a run dir or a sweep dir)."""
    return sorted(p for p in Path(root).rglob("offline-run-*") if p.is_dir())
