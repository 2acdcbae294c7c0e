"""The documentation builds without a warning, and no link of the README or docs/ is broken."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MKDOCS = [sys.executable, "-m", "mkdocs"]
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s]+)\)")
MAX_README_LINES = 250


def anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives the headings of a markdown page."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.M | re.S)
    return {slugify(title.strip(), "-") for title in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.slow
def test_mkdocs_builds_strict(tmp_path):
    """--strict: a link to a missing page or anchor, or a page left out of the nav, fails the build."""
    site = tmp_path / "site"
    done = subprocess.run(
        [*MKDOCS, "build", "--strict", "--site-dir", str(site)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pages = sorted(p.stem for p in (REPO / "docs").glob("*.md"))
    using = ["cli", "python", "http", "batch"]
    model = ["model-card", "reliability", "benchmarks"]
    assert pages == sorted(["index", "install", *using, *model, "pipeline", "training", "development"])
    for page in pages:
        assert (site / ("" if page == "index" else page) / "index.html").is_file(), page


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path):
    """The check above can fail: the same configuration on a copy of docs/ with one broken anchor."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in (REPO / "docs").glob("*.md"):
        (docs / page.name).write_text(page.read_text())
    (docs / "index.md").write_text((docs / "index.md").read_text() + "\n[gone](cli.md#no-such-heading)\n")
    config = (REPO / "mkdocs.yml").read_text()
    (tmp_path / "mkdocs.yml").write_text(config)
    done = subprocess.run(
        [*MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "does not contain an anchor '#no-such-heading'" in done.stderr


def test_readme_is_short_and_its_links_lead_somewhere():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    links = LINK.findall(text)
    assert len(links) >= 10
    for link in links:
        target, _, anchor = link.partition("#")
        page = REPO / target
        assert page.exists(), f"README.md links to {link}, which does not exist"
        if anchor:
            assert anchor in anchors(page), f"README.md links to {link}: no such heading"


@pytest.mark.parametrize(
    ("title", "anchor"),
    [('"Not a 0, 5 or 8"', "not-a-0-5-or-8"), ("Serving over HTTP", "serving-over-http")],
)
def test_anchors_are_mkdocs_own(title, anchor):
    assert slugify(title, "-") == anchor
