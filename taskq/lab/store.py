"""Experiments as files: :func:`save` writes a lab frame to Parquet with its ``attrs`` (seed,
workload, configurations, machine, versions) in the file's metadata, and :func:`load` gives
back the same frame with the same ``attrs``, so a saved experiment re-plots without re-running.

The ``attrs`` go in as JSON under the schema metadata key :data:`METADATA_KEY` (pyarrow), beside
pandas' own metadata; any Parquet reader sees the columns, and ``pq.read_schema(path).metadata``
shows how the data was made.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taskq.lab.model import FRAME_COLUMNS, LabError, check_frame

#: The Parquet schema metadata key that holds the frame's attrs (JSON).
METADATA_KEY = b"taskq.lab.attrs"


def save(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (a lab frame: :func:`~taskq.lab.model.check_frame`) to ``path`` as Parquet,
    its ``attrs`` in the file's metadata. The file is written whole or not at all (a temporary
    file renamed into place); attrs that are not JSON-able raise :class:`LabError` before
    anything is written. Returns the path."""
    check_frame(df)
    try:
        attrs = json.dumps(df.attrs, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise LabError(f"save: the frame's attrs are not plain JSON: {exc}") from None
    target = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: attrs.encode()})
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The frame :func:`save` wrote to ``path``, with its ``attrs``; a file without the lab's
    metadata, or not a lab frame, raises :class:`LabError`."""
    try:
        table = pq.read_table(Path(path))
    except (OSError, pa.ArrowException) as exc:
        raise LabError(f"load: cannot read {path} as Parquet: {exc}") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise LabError(f"load: {path} holds no taskq.lab metadata (not written by taskq.lab.save)")
    df: pd.DataFrame = table.to_pandas().astype(dict(FRAME_COLUMNS))  # text columns back to object, as made
    attrs: dict[str, Any] = json.loads(raw)
    df.attrs.clear()
    df.attrs.update(attrs)
    return check_frame(df)
