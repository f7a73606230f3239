"""Maintainer command: write a manifest (path, bytes, sha256) from a git repository.

Reads the blobs of one commit with ``git ls-tree`` / ``git cat-file`` (a bare
clone is enough, no work tree or network needed), so the manifest describes
exactly what the raw URL of that commit serves. The shipped manifests were made
with (``R`` a clone of https://github.com/AiEson/CrossMatch):

    python -m data_download.make_manifest R --commit 59772e00c3d2bee5e3a603e596ef120eb9f88fd3 \\
        --under "LA/data/2018LA_Seg_Training Set" --relative-to LA/data \\
        --include '*/mri_norm2.h5' --include '*.list' > data_download/manifests/la_crossmatch_h5.tsv

    python -m data_download.make_manifest R --commit 59772e00c3d2bee5e3a603e596ef120eb9f88fd3 \\
        --under ACDC/dataset/datasets/ACDC/data --include '*.h5' \\
        > data_download/manifests/acdc_crossmatch_h5.tsv
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import subprocess
import sys

from .manifest import Entry, dump


def entries(repo: str, commit: str, under: str, relative_to: str = "",
            include: list[str] | None = None) -> list[Entry]:
    under = under.strip("/")
    prefix = relative_to.strip("/") + "/" if relative_to.strip("/") else ""
    ls = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "-z", "--full-tree", commit, "--", under],
                        check=True, capture_output=True).stdout.decode()
    blobs = []
    for rec in filter(None, ls.split("\0")):
        meta, path = rec.split("\t", 1)
        kind, sha = meta.split()[1:3]
        if kind != "blob" or not path.startswith(prefix):
            continue
        rel = path[len(prefix):]
        if include and not any(fnmatch.fnmatchcase(rel, pat) for pat in include):
            continue
        blobs.append((rel, sha))
    out = []
    for rel, sha in sorted(blobs):
        data = subprocess.run(["git", "-C", repo, "cat-file", "blob", sha],
                              check=True, capture_output=True).stdout
        out.append(Entry(rel, len(data), hashlib.sha256(data).hexdigest()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_download.make_manifest",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", help="a clone (bare is fine) of the source repository")
    ap.add_argument("--commit", required=True)
    ap.add_argument("--under", required=True, help="folder in the repository to list")
    ap.add_argument("--relative-to", default="",
                    help="write paths relative to this folder (the mirror base); default: the root")
    ap.add_argument("--include", action="append",
                    help="glob on the written path (fnmatch, '*' crosses '/'); repeatable")
    args = ap.parse_args(argv)
    dump(entries(args.repo, args.commit, args.under, args.relative_to, args.include), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
