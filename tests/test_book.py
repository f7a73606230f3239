"""The tutorial book: its source folder (notebooks and guide pages staged, one table of
contents with two parts, every relative link resolving), and a build that reports a
failing notebook by name, exception and traceback file."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import yaml

import crossmatch_lite.tutorial.book as book
from crossmatch_lite.tutorial.book import guide_pages, notebooks, stage
from crossmatch_lite.tutorial.notebook import project_root

LINK = re.compile(r"\]\(([^)\s#]+\.(?:md|ipynb|png|svg))(?:#[^)]*)?\)")  # pages, notebooks, figures


def test_stage_writes_tutorials_and_guide_with_working_links(tmp_path):
    root = project_root()
    src = stage(tmp_path, smoke=True)
    toc = yaml.safe_load((src / "_toc.yml").read_text())
    tutorials, guide = toc["parts"]
    assert tutorials["caption"] == "Tutorials" and guide["caption"] == "Guide"
    assert [c["file"] for c in tutorials["chapters"]] == [nb.stem for nb in notebooks(root)]
    files = [c["file"] for c in guide["chapters"]]
    docs = guide_pages(root)
    assert docs and files[0] == "README"
    assert [f for f in files if f.startswith("docs/")] == [f"docs/{p.stem}" for p in docs]
    for f in files:
        assert (src / f"{f}.md").is_file(), f
    for page in [src / "intro.md"] + [src / f"{f}.md" for f in files] + [src / f"{n}.ipynb" for n in
                                                                           [nb.stem for nb in notebooks(root)]]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).is_file(), f"{page.relative_to(src)} links to missing {target}"


def test_restaging_drops_pages_that_are_gone(tmp_path):
    src = stage(tmp_path, smoke=False)
    (src / "docs" / "removed_page.md").write_text("# gone\n")
    stage(tmp_path, smoke=False)
    assert not (src / "docs" / "removed_page.md").exists()


def _project_with_failing_notebook(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Fails"),
                nbformat.v4.new_code_cell("x = 1\nraise ValueError('the data folder is missing')")]
    nbformat.write(nb, str(root / "notebooks" / "00_fails.ipynb"))
    return root


def test_failing_notebook_is_named_with_its_exception_and_log(tmp_path, monkeypatch, capsys):
    root = _project_with_failing_notebook(tmp_path / "project")
    monkeypatch.setattr(book, "project_root", lambda: root)
    out = tmp_path / "book"
    assert book.main(["build", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    report = out / "_build" / "html" / "reports" / "00_fails.err.log"
    assert "\x1b" not in err and "\x1b" not in (out / "build.log").read_text()
    assert "failed (exit 0)" not in err and "jupyter-book exit status 0" in err
    assert "00_fails.ipynb: ValueError: the data folder is missing" in err
    assert f"traceback: {report}" in err and report.is_file()
    assert f"full log: {out / 'build.log'}" in err


def test_a_rebuild_still_reports_the_failing_notebook(tmp_path, monkeypatch, capsys):
    """Sphinx re-reads changed sources only: a failed, unchanged notebook must still count."""
    root = _project_with_failing_notebook(tmp_path / "project")
    monkeypatch.setattr(book, "project_root", lambda: root)
    out = tmp_path / "book"
    assert book.main(["build", "--out", str(out)]) == 1
    capsys.readouterr()
    assert book.main(["build", "--out", str(out)]) == 1
    assert "00_fails.ipynb: ValueError: the data folder is missing" in capsys.readouterr().err
    # Fixed, it builds, and no stale traceback file is left to point at.
    nb = nbformat.read(str(root / "notebooks" / "00_fails.ipynb"), as_version=4)
    nb.cells[1].source = "x = 1"
    nbformat.write(nb, str(root / "notebooks" / "00_fails.ipynb"))
    assert book.main(["build", "--out", str(out)]) == 0
    assert not list((out / "_build" / "html" / "reports").glob("*.err.log"))
