"""Build the tutorial series as a static HTML book, every notebook executed, with caching.

    python -m crossmatch_lite.tutorial.book build            # full defaults -> runs/book/_build/html/index.html
    python -m crossmatch_lite.tutorial.book build --smoke    # CI-sized (CROSSMATCH_LITE_SMOKE=1) -> runs/smoke/book/...

The tool is Jupyter Book 1.x: pure pip, Sphinx + MyST-NB underneath, and its execution
cache (jupyter-cache) keys each notebook by its code, so a rebuild re-executes only the
notebooks that changed and renders the others from their stored outputs. The book's source
folder holds copies of notebooks/*.ipynb (part "Tutorials"), of README.md, CONTRIBUTING.md
and docs/*.md (part "Guide"), plus a generated table of contents; full and smoke builds
keep separate caches, because the same code gives other outputs in each mode.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from ..run.files import atomic_write_bytes, atomic_write_text
from .notebook import project_root
from .smoke import SMOKE_ENV

TITLE = "crossmatch_lite: semi-supervised segmentation, step by step"
# Sphinx colours its output even into a pipe; the codes are noise in a log and a message.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# The guide's reading order; docs pages not named here follow in alphabetical order.
GUIDE_ORDER = ("method", "glossary", "configuration", "training", "data", "3d", "results", "ablations", "speed",
               "gpu", "notebooks", "reliability", "testing", "citation")
ROOT_PAGES = ("README.md", "CONTRIBUTING.md")  # staged at the book's root, so docs/x.md -> ../README.md works
# A link to a notebook of the series (`notebooks/NN_x.ipynb`, or its .py twin) from a guide page.
_NOTEBOOK_LINK = re.compile(r"\]\(((?:\.\./)?)notebooks/(0[0-9][a-z]?_[\w-]+)\.(?:ipynb|py)\)")
# The series: 00_x ... 08_x, and a notebook slotted between two numbers with a letter (04b_x).
SERIES_GLOB = "0[0-9]*_*.ipynb"


def notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob(SERIES_GLOB))


def guide_pages(root: Path) -> list[Path]:
    """docs/*.md in reading order."""
    pages = {p.stem: p for p in (root / "docs").glob("*.md")}
    return [pages[n] for n in GUIDE_ORDER if n in pages] + [pages[n] for n in sorted(set(pages) - set(GUIDE_ORDER))]


def _guide_text(text: str) -> str:
    """In the book the notebooks sit at the source root: point notebook links at those copies."""
    return _NOTEBOOK_LINK.sub(r"](\1\2.ipynb)", text)


def _write_if_changed(target: Path, data: bytes) -> None:
    if not target.exists() or target.read_bytes() != data:
        atomic_write_bytes(target, data)


def _intro(root: Path, names: list[str]) -> str:
    rows = "\n".join(f"- [{n}]({n}.ipynb)" for n in names)
    return (f"# {TITLE}\n\nThe tutorial notebooks of `notebooks/`, executed. Each page is one notebook with "
            f"its outputs and figures; the notebooks themselves (and their `py:percent` twins) are in the "
            f"repository.\n\n{rows}\n\nThe guide after them holds the README and the pages of `docs/`: the "
            f"method as implemented, configuration, training, data, results and the rest.\n")


def stage(out: Path, smoke: bool) -> Path:
    """Write the book's source folder: notebook copies and guide pages (rewritten only when
    they change, so Sphinx and the cache see unchanged files as unchanged), _config.yml and
    _toc.yml with two parts, "Tutorials" (the notebooks) and "Guide" (README, docs/*.md)."""
    root = project_root()
    src = out / "src"
    (src / "docs").mkdir(parents=True, exist_ok=True)
    names = []
    for nb in notebooks(root):
        # notebooks/ links the guide as ../docs/x.md; in the book the notebooks sit beside docs/.
        _write_if_changed(src / nb.name, nb.read_bytes().replace(b"](../docs/", b"](docs/"))
        names.append(nb.stem)
    for stale in set(p.stem for p in src.glob("*.ipynb")) - set(names):
        (src / f"{stale}.ipynb").unlink()
    pages = guide_pages(root)
    for page in pages:
        _write_if_changed(src / "docs" / page.name, _guide_text(page.read_text(encoding="utf-8")).encode("utf-8"))
    for stale in set(p.name for p in (src / "docs").glob("*.md")) - set(p.name for p in pages):
        (src / "docs" / stale).unlink()
    figures = sorted((root / "docs" / "figures").glob("*.png"))  # the images the guide shows
    (src / "docs" / "figures").mkdir(exist_ok=True)
    for fig in figures:
        _write_if_changed(src / "docs" / "figures" / fig.name, fig.read_bytes())
    guide = [(f"docs/{p.stem}", None) for p in pages]  # (toc file, title or None)
    for name in ROOT_PAGES:
        if (root / name).is_file():
            _write_if_changed(src / name, _guide_text((root / name).read_text(encoding="utf-8")).encode("utf-8"))
            if name == "README.md":
                guide.insert(0, ("README", "Overview (README)"))
            else:
                guide.append((Path(name).stem, None))
        elif (src / name).exists():
            (src / name).unlink()
    atomic_write_text(src / "intro.md", _intro(root, names))
    atomic_write_text(src / "_toc.yml", "format: jb-book\nroot: intro\nparts:\n"
                      + "  - caption: Tutorials\n    chapters:\n" + "".join(f"      - file: {n}\n" for n in names)
                      + ("  - caption: Guide\n    chapters:\n" if guide else "")  # an empty part is invalid
                      + "".join(f"      - file: {f}\n" + (f"        title: \"{t}\"\n" if t else "") for f, t in guide))
    atomic_write_text(src / "_config.yml", f"""title: "{TITLE}{' (smoke build)' if smoke else ''}"
author: crossmatch_lite
only_build_toc_files: true
execute:
  execute_notebooks: cache
  cache: "{(out / 'jupyter_cache').resolve()}"
  timeout: -1
  allow_errors: false
  stderr_output: remove
sphinx:
  config:
    nb_execution_show_tb: true
    html_show_copyright: false
    myst_heading_anchors: 3
""")
    return src


def build(out: str | Path | None = None, smoke: bool = False) -> Path:
    """Build the book; returns the path of its index.html. Raises if a notebook failed."""
    root = project_root()
    if root is None:
        raise RuntimeError("the book is built from a checkout of the project (notebooks/ and configs/)")
    out = Path(out) if out else root / ("runs/smoke/book" if smoke else "runs/book")
    src = stage(out.resolve(), smoke)
    # Sphinx re-reads only changed sources, so a notebook that failed last time would be left
    # out of a rebuild's execution and the book reported fine: make it read (and run) again.
    for report in (out / "_build" / "html" / "reports").glob("*.err.log"):
        report.unlink()
        copy = src / (report.name[: -len(".err.log")] + ".ipynb")
        if copy.exists():
            os.utime(copy)
    env = dict(os.environ)
    # Kernels import this checkout's package, whatever else is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if smoke:
        env[SMOKE_ENV] = "1"
    else:
        env.pop(SMOKE_ENV, None)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; main()",
           "build", str(src), "--path-output", str(out), "--keep-going"]
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    log = ANSI.sub("", proc.stdout + proc.stderr)
    atomic_write_text(out / "build.log", log)
    failed = _failed_notebooks(log)
    index = out / "_build" / "html" / "index.html"
    if proc.returncode != 0 or failed or not index.exists():
        # With --keep-going jupyter-book exits 0 although a notebook failed: say which status
        # it really had, and for each failed notebook its exception and its traceback file.
        status = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                  else f"exit status {proc.returncode}")
        head = (f"the book build failed: {len(failed)} notebook(s) failed to execute (jupyter-book {status}"
                + (", as --keep-going renders the other pages" if proc.returncode == 0 else "") + ")"
                if failed else f"the book build failed (jupyter-book {status})")
        body = [ln for nb, exception, report in failed
                for ln in [f"  {nb}: {exception or 'see the full log'}"] + ([f"    traceback: {report}"] if report else [])]
        raise RuntimeError("\n".join([head, *(body or log.splitlines()[-15:]), f"full log: {out / 'build.log'}"]))
    return index


def _failed_notebooks(log: str) -> list[tuple[str, str | None, str | None]]:
    """(notebook, exception line, traceback file) of each notebook whose execution failed;
    MyST-NB saves each traceback in a file and names it in the log."""
    failed = re.findall(r"^(\S+\.ipynb): WARNING: Executing notebook failed", log, re.M)
    saved = dict(re.findall(r"^(\S+\.ipynb): WARNING: Notebook exception traceback saved in: (.+?\.err\.log)",
                            log, re.M))
    return [(Path(nb).name, _last_line(Path(saved[nb])) if nb in saved else None, saved.get(nb))
            for nb in dict.fromkeys(failed)]


def _last_line(path: Path) -> str | None:
    """The exception line of a saved traceback: its last non-empty line."""
    try:
        text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crossmatch_lite.tutorial.book", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="execute (cached) and render every notebook to HTML")
    b.add_argument("--smoke", action="store_true", help="CI-sized notebooks (CROSSMATCH_LITE_SMOKE=1), own folder")
    b.add_argument("--out", help="output folder (default runs/book, or runs/smoke/book with --smoke)")
    args = ap.parse_args(argv)
    try:
        index = build(args.out, smoke=args.smoke)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"built: {index}\nopen it in a browser, e.g. python -m http.server -d {index.parent} 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
