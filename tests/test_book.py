"""The tutorial book's source folder (no build): notebooks and guide pages staged, one table
of contents with two parts, and every relative link between staged pages resolving."""
from __future__ import annotations

import re

import yaml

from crossmatch_lite.tutorial.book import guide_pages, notebooks, stage
from crossmatch_lite.tutorial.notebook import project_root

LINK = re.compile(r"\]\(([^)\s#]+\.(?:md|ipynb))(?:#[^)]*)?\)")


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
    for page in [src / "intro.md"] + [src / f"{f}.md" for f in files]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).is_file(), f"{page.relative_to(src)} links to missing {target}"


def test_restaging_drops_pages_that_are_gone(tmp_path):
    src = stage(tmp_path, smoke=False)
    (src / "docs" / "removed_page.md").write_text("# gone\n")
    stage(tmp_path, smoke=False)
    assert not (src / "docs" / "removed_page.md").exists()
