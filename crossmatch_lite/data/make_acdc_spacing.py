"""Regenerate acdc_spacing.tsv from the official ACDC zip.

The SSL4MIS HDF5 files carry no voxel spacing, yet HD95/ASD in mm need it. The spacing
lives only in the NIfTI headers of the official download, so we read it once from there
and ship the small table with the package.

    python -m crossmatch_lite.data.make_acdc_spacing PATH/TO/ACDC-training.zip [--out FILE]

NIfTI stores (x, y, z); the HDF5 arrays are (z, y, x), so the table is written (z, y, x).
frame01 is the ED frame and frame02 the ES frame, as in the HDF5 layout.
"""
from __future__ import annotations

import argparse
import gzip
import re
import zipfile
from pathlib import Path

import nibabel as nib

OUT = Path(__file__).with_name("acdc_spacing.tsv")


def header_zooms(zf: zipfile.ZipFile, member: str) -> tuple[float, float, float]:
    # The header is the first 348 bytes of the decompressed file: no need to read the volume.
    with zf.open(member) as raw, gzip.open(raw) as f:
        hdr = nib.Nifti1Header.from_fileobj(f)
    x, y, z = (float(v) for v in hdr.get_zooms()[:3])
    return z, y, x


def info_frames(text: str) -> dict[str, int]:
    info = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    return {"frame01": int(info["ED"]), "frame02": int(info["ES"])}


def spacing_rows(zip_path: Path) -> list[tuple[str, float, float, float]]:
    rows = []
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        infos = sorted(n for n in names if re.search(r"(patient\d{3})/Info\.cfg$", n))
        if not infos:
            raise SystemExit(f"{zip_path}: no patientXXX/Info.cfg inside; is this ACDC-training.zip?")
        for info in infos:
            folder = info.rsplit("/", 1)[0]
            patient = folder.rsplit("/", 1)[1]
            for tag, frame in info_frames(zf.read(info).decode()).items():
                member = f"{folder}/{patient}_frame{frame:02d}.nii.gz"
                rows.append((f"{patient}_{tag}", *header_zooms(zf, member)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zip", type=Path, help="the official ACDC-training.zip")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = spacing_rows(args.zip)
    lines = ["case\tz_mm\ty_mm\tx_mm"] + [f"{c}\t{z!r}\t{y!r}\t{x!r}" for c, z, y, x in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} cases to {args.out}")


if __name__ == "__main__":
    main()
