"""The shipped list of published ACDC HDF5 files (path, size, SHA-256).

The checksums pin exactly what AiEson/CrossMatch published at the pinned commit,
so a download from any mirror is verified against the original, not against
whatever the mirror happens to serve.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

MANIFEST = Path(__file__).with_name("manifests") / "acdc_crossmatch_h5.tsv"


@dataclass(frozen=True)
class Entry:
    path: str  # path inside the CrossMatch repository
    size: int
    sha256: str


def load(path: Path = MANIFEST) -> list[Entry]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return [Entry(r["path"], int(r["bytes"]), r["sha256"].lower()) for r in rows]
