"""Every relative link of README.md and docs/*.md leads somewhere: the file exists and the anchor is a
heading of it, with GitHub's anchor rules (lower case, punctuation dropped, spaces to hyphens, ``-1``,
``-2``... for repeated headings). External links (http, mailto) are not fetched."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
#: Inline links and images: [text](target "title"); the text may hold brackets one level deep.
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (links, emphasis and code marks dropped) lower-cased,
    every character that is not a letter, digit, space, hyphen or underscore dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            seen = counts.get(slug, 0)
            counts[slug] = seen + 1
            found.add(slug if seen == 0 else f"{slug}-{seen}")
    return found


def links(path: Path) -> list[str]:
    found: list[str] = []
    for line in _prose(path.read_text(encoding="utf-8")):
        found.extend(_INLINE.findall(line))
        match = _REFERENCE.match(line)
        if match:
            found.append(match.group(1))
    return found


def relative_links() -> list[tuple[Path, str]]:
    return [
        (document, target)
        for document in DOCUMENTS
        for target in links(document)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("//")
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("How the exporter spends the API budget", "how-the-exporter-spends-the-api-budget"),
        ("Securing /metrics", "securing-metrics"),
        (
            "Reliability: what the exporter promises under bad input",
            "reliability-what-the-exporter-promises-under-bad-input",
        ),
        ("Token rotation and SIGHUP", "token-rotation-and-sighup"),
        ("`--config.check` first", "--configcheck-first"),
        ("A [linked](https://x.test) heading", "a-linked-heading"),
        ("snake_case stays", "snake_case-stays"),
    ],
)
def test_github_slugs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n## Example\n```\n## not a heading\n```\n## Example\n", encoding="utf-8")
    assert anchors(doc) == {"title", "example", "example-1"}


def test_the_checker_finds_links_in_prose_only(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        'See [a](#a) and ![img](pic.png "t") and `[not](#code)`.\n'
        "```\n[no](#fenced)\n```\n[ref]: other.md#x\n",
        encoding="utf-8",
    )
    assert links(doc) == ["#a", "pic.png", "other.md#x"]


def test_every_relative_link_and_anchor_resolves() -> None:
    assert relative_links(), "no relative links found: the checker is broken"
    broken = []
    for document, target in relative_links():
        path_part, _, fragment = target.partition("#")
        destination = (document.parent / unquote(path_part)).resolve() if path_part else document
        if not destination.exists():
            broken.append(f"{document.relative_to(ROOT)}: {target} (no such file)")
            continue
        if fragment and destination.suffix == ".md" and unquote(fragment) not in anchors(destination):
            broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
