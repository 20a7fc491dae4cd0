"""The documents a clone holds: every relative link in them names a file of the repo
(a guide that points outside it, as the README once did at ../shared/, is broken)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) with a target that is not a URL or an anchor of the same page.
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_names_a_file_of_the_repo(document: Path):
    for target in LINK.findall(document.read_text()):
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document.name} links outside the repo: {target}"
        assert path.exists(), f"{document.name} links to a missing file: {target}"


def test_the_readme_links_the_guides():
    readme = (ROOT / "README.md").read_text()
    for guide in ("docs/compatibility.md", "docs/migrating.md", "docs/state_machine.md"):
        assert f"]({guide})" in readme, guide
