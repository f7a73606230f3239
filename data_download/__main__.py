"""Command line: ``python -m data_download {acdc,isic2018,la,check} ...``."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import acdc, check, isic, la, sources
from .errors import DataDownloadError


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, 88, break_on_hyphens=False) for p in text.split("\n"))


MIRROR_HELP = ("replace the public host: an http(s) base URL, a file:// URL or a local folder "
               "holding the same files")


def _at_least_zero(kind: type):
    """An argparse type: a negative --retries would give up before the first attempt and a
    negative --backoff crashes in sleep() after the first failure, so both are refused here."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, "
                                             f"got {text!r}") from None
        if not (0 <= value < float("inf")):
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value
    return parse


def _common(p: argparse.ArgumentParser, mirror_help: str = MIRROR_HELP) -> None:
    p.add_argument("--mirror", metavar="URL", help=mirror_help)
    p.add_argument("--retries", type=_at_least_zero(int), default=5,
                   help="retries without progress before a download gives up (default 5; each attempt "
                        "waits up to 60 s, so a silent server is given up on after about 6.5 minutes)")
    p.add_argument("--backoff", type=_at_least_zero(float), default=1.0,
                   help="first retry delay in seconds, doubled on each failure (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m data_download",
        description="Download and prepare ACDC, ISIC 2018 Task 1 and the Left Atrium (LA). Safe "
                    "to interrupt and re-run: finished steps are skipped, downloads resume.")
    sub = ap.add_subparsers(dest="command", required=True)

    a = sub.add_parser("acdc", help="ACDC cardiac MRI -> SSL4MIS HDF5 layout in DEST/data")
    a.add_argument("--dest", type=Path, required=True)
    a.add_argument("--source", choices=("official", "h5"), default="official",
                   help="official: Creatis zip, converted here (default); h5: the preprocessed "
                        "files published in AiEson/CrossMatch, checked against a shipped manifest")
    a.add_argument("--workers", type=int, default=0,
                   help="conversion processes (default: CPUs, at most 4)")
    a.add_argument("--cleanup", action="store_true",
                   help="delete the downloaded zip and extracted NIfTI after a successful conversion")
    _common(a)

    i = sub.add_parser("isic2018", help="ISIC 2018 Task 1 -> DEST/<split>.h5")
    i.add_argument("--dest", type=Path, required=True)
    i.add_argument("--splits", default=None,
                   help="comma-separated subset of train,val,test, each required (default: train, "
                        "plus val and test where the source has them)")
    i.add_argument("--size", type=int, default=256, help="output side length in pixels (default 256)")
    i.add_argument("--cleanup", action="store_true",
                   help="delete the downloaded zips after a split is written")
    _common(i)

    la = sub.add_parser(
        "la", help="Left Atrium 2018 (UA-MT preprocessed, 100 volumes) -> DEST/<ID>/mri_norm2.h5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("The 100 Left Atrium volumes (2018 Atrial Segmentation Challenge, UA-MT "
                    "preprocessing, 233 MB) and the 8 split lists as published in AiEson/CrossMatch "
                    f"at commit {sources.CROSSMATCH_COMMIT[:12]}, each checked against the shipped "
                    "SHA-256 manifest. DEST gets <ID>/mri_norm2.h5 and train.list, test.list, "
                    "train_{4,8,16}_{label,unlabel}.list. Interrupted downloads resume."),
        epilog=_wrap(sources.LA_CITATION))
    la.add_argument("--dest", type=Path, required=True)
    _common(la, "a copy of CrossMatch's LA/data/ folder (holding '2018LA_Seg_Training Set/'): an "
                "http(s) base URL, a file:// URL or a local folder (default: raw.githubusercontent.com "
                "at the pinned commit)")

    c = sub.add_parser("check", help="verify a prepared dataset folder and report what is wrong")
    c.add_argument("dest", type=Path)
    c.add_argument("--quick", action="store_true",
                   help="check structure and counts only, not every value")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "acdc":
            opt = acdc.Options(dest=args.dest, mirror=args.mirror, retries=args.retries,
                               backoff=args.backoff, workers=args.workers,
                               progress=not args.quiet, cleanup=args.cleanup)
            (acdc.run_h5 if args.source == "h5" else acdc.run_official)(opt)
        elif args.command == "isic2018":
            given = args.splits is not None
            splits = [s.strip() for s in (args.splits if given else "train,val,test").split(",") if s.strip()]
            opt = isic.Options(dest=args.dest, splits=splits, size=args.size, mirror=args.mirror,
                               retries=args.retries, backoff=args.backoff,
                               progress=not args.quiet, cleanup=args.cleanup,
                               optional=() if given else ("val", "test"))
            isic.run(opt)
        elif args.command == "la":
            la.run(la.Options(dest=args.dest, mirror=args.mirror, retries=args.retries,
                              backoff=args.backoff, progress=not args.quiet))
        else:
            problems, summary = check.check(args.dest, quick=args.quick)
            if problems:
                print(f"{args.dest}: {len(problems)} problem(s):", file=sys.stderr)
                for p in problems[:50]:
                    print(f"  - {p}", file=sys.stderr)
                if len(problems) > 50:
                    print(f"  ... and {len(problems) - 50} more", file=sys.stderr)
                return 1
            print(summary)
    except DataDownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A filesystem refusal deep in a step (permissions, a full or read-only disk) is
        # the user's to fix; the steps are resumable, so say where and stop.
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}. Fix this (permissions, free space) and re-run the "
              "same command to continue.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to continue where it stopped",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
