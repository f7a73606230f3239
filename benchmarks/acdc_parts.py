"""Carry the ACDC training zip to a lent device in pieces, and put it back together there.

A device call carries at most 64 MiB of working tree; the zip is 116 MB of already
compressed NIfTI, so it goes in two calls, each carrying one part (README, "On a GPU").
A manifest with every part's and the whole file's SHA-256 travels with each part, so the
joined zip is known to be the original byte for byte.

    python -m benchmarks.acdc_parts split [--zip PATH] [--dest data/acdc_parts] [--part-mb 59]
    python -m benchmarks.acdc_parts join  [--parts data/acdc_parts] --out DIR/ACDC-training.zip
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

from crossmatch_lite.run.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARTS = ROOT / "data" / "acdc_parts"  # /data/ is git-ignored: parts travel only when carried
ZIP_NAME = "ACDC-training.zip"
MANIFEST = f"{ZIP_NAME}.parts.json"
CHUNK = 1 << 20


class PartsError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def split(zip_path: Path, dest: Path, max_part_bytes: int) -> dict:
    """As few parts as the size allows, all of (nearly) the same size."""
    zip_path, dest = Path(zip_path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    size = zip_path.stat().st_size
    n = max(1, math.ceil(size / max_part_bytes))
    part_bytes = math.ceil(size / n)
    parts, whole = [], hashlib.sha256()
    with open(zip_path, "rb") as src:
        for i in range(n):
            data = src.read(part_bytes)
            if not data:
                break
            whole.update(data)
            name = f"{ZIP_NAME}.part{i:02d}"
            tmp = dest / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(dest / name)
            parts.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"name": ZIP_NAME, "bytes": sum(p["bytes"] for p in parts), "sha256": whole.hexdigest(),
                "parts": parts}
    atomic_write_json(dest / MANIFEST, manifest)
    return manifest


def missing_parts(parts_dir: Path) -> list[str]:
    """Names of the parts not (or not correctly) present; [] when all are."""
    parts_dir = Path(parts_dir)
    manifest = json.loads((parts_dir / MANIFEST).read_text())
    return [p["name"] for p in manifest["parts"]
            if not (parts_dir / p["name"]).is_file() or (parts_dir / p["name"]).stat().st_size != p["bytes"]]


def join(parts_dir: Path, out: Path) -> Path:
    parts_dir, out = Path(parts_dir), Path(out)
    if not (parts_dir / MANIFEST).is_file():
        raise PartsError(f"no {MANIFEST} in {parts_dir}; make the parts with "
                         "`python -m benchmarks.acdc_parts split` and carry them with it")
    manifest = json.loads((parts_dir / MANIFEST).read_text())
    if out.is_file() and out.stat().st_size == manifest["bytes"] and _sha256(out) == manifest["sha256"]:
        return out
    missing = missing_parts(parts_dir)
    if missing:
        have = [p["name"] for p in manifest["parts"] if p["name"] not in missing]
        raise PartsError(
            f"{parts_dir} lacks {', '.join(missing)} (has {', '.join(have) or 'none'}). A device keeps a "
            "carried part only while it stays warm (30 s after a call): carry the missing part(s) "
            "in the next call, each path named on its own in carry")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    whole = hashlib.sha256()
    with open(tmp, "wb") as dst:
        for p in manifest["parts"]:
            data = (parts_dir / p["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != p["sha256"]:
                tmp.unlink()
                raise PartsError(f"{parts_dir / p['name']} is damaged (SHA-256 differs from the manifest)")
            whole.update(data)
            dst.write(data)
    if whole.hexdigest() != manifest["sha256"]:
        tmp.unlink()
        raise PartsError(f"the joined {ZIP_NAME} differs from the original (SHA-256)")
    tmp.replace(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="cut the zip into parts that each fit one device call")
    s.add_argument("--zip", default=None, help="the ACDC training zip (default: the session's search order)")
    s.add_argument("--dest", type=Path, default=DEFAULT_PARTS)
    s.add_argument("--part-mb", type=float, default=59.0,
                   help="largest part in MB (default 59: two parts of 58.0 MB, each fitting one call "
                        "of 64 MiB with the wheels and the repository)")
    j = sub.add_parser("join", help="rebuild the zip from its parts and check it")
    j.add_argument("--parts", type=Path, default=DEFAULT_PARTS)
    j.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "split":
            from .session_data import find_acdc_zip, zip_candidates
            zip_path = find_acdc_zip(args.zip)
            if zip_path is None:
                tried = [args.zip] if args.zip else [str(p) for p in zip_candidates()]
                raise PartsError(f"no {ZIP_NAME} found; tried {', '.join(tried)}")
            m = split(zip_path, args.dest, int(args.part_mb * 1e6))
            print(f"{len(m['parts'])} parts of {zip_path} in {args.dest}: "
                  + ", ".join(f"{p['name']} ({p['bytes'] / 2 ** 20:.1f} MiB)" for p in m["parts"]))
        else:
            print(join(args.parts, args.out))
    except (PartsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
