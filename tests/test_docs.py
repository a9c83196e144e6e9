"""docs/METHOD.md is the method's reference inside the repository: every "METHOD a.b" citation in
the project names a section that exists there, its sections are numbered without gaps, and no
citation of the outside specification is left."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "METHOD.md"

SOURCE_DIRS = ("sphmask_core", "training", "sphmask_ros", "tests", "bench", "docs", "scripts",
               "launch", "config", "msg")
TOP_FILES = ("README.md", "setup.py", "CMakeLists.txt", "Makefile", "package.xml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".txt", ".xml", ".cfg", ".toml", ".msg", ".rviz"}
SKIP_DIRS = {"__pycache__", ".venv", "build", "install", "log", "runs"}

_NUMBER = r"\d+(?:\.\d+)?"
# "METHOD 4.4", "METHOD 5.1-5.5", "METHOD 7.3, 8.3", "METHOD 2.2 and 2.3"
_CITATION = re.compile(rf"\bMETHOD\s+({_NUMBER}(?:\s*(?:-|,|and)\s*{_NUMBER})*)")
# spelled in two parts so that this file does not cite the outside spec itself
_OUTSIDE = re.compile(r"\b" + "SP" + r"EC\s+\d")
_CHAPTER = re.compile(r"^## (\d+)\. \S", re.MULTILINE)
_SECTION = re.compile(r"^### (\d+)\.(\d+) \S", re.MULTILINE)


def method_sections(text: str) -> set[str]:
    """Section numbers defined by "## a. Title" and "### a.b Title" headings."""
    chapters = {m.group(1) for m in _CHAPTER.finditer(text)}
    sections = {f"{m.group(1)}.{m.group(2)}" for m in _SECTION.finditer(text)}
    return chapters | sections


def cited_sections(text: str) -> list[str]:
    """Every section number cited as METHOD ..., ranges and lists expanded to their members."""
    out: list[str] = []
    for m in _CITATION.finditer(text):
        out.extend(re.findall(_NUMBER, m.group(1)))
    return out


def missing_citations(text: str, sections: set[str]) -> list[str]:
    return [n for n in cited_sections(text) if n not in sections]


def project_files() -> list[Path]:
    """The project's text files, this test excepted (its examples cite sections on purpose)."""
    files = [REPO / name for name in TOP_FILES if (REPO / name).is_file()]
    for d in SOURCE_DIRS:
        for path in sorted((REPO / d).rglob("*")):
            rel = path.relative_to(REPO).parts
            if path.is_file() and path.suffix in SUFFIXES and not SKIP_DIRS.intersection(rel):
                files.append(path)
    files = [f for f in files if f != Path(__file__).resolve()]
    return files


def test_citation_parser_expands_ranges_and_lists() -> None:
    text = "see METHOD 4.4 and METHOD 5.1-5.5; (METHOD 7.3, 8.3), METHOD 2.2 and 2.3, METHOD 6 steps 1-2"
    assert cited_sections(text) == ["4.4", "5.1", "5.5", "7.3", "8.3", "2.2", "2.3", "6"]
    assert cited_sections("docs/METHOD.md and the METHOD section") == []


def test_missing_section_is_reported() -> None:
    doc = "## 1. One\n### 1.1 First\n### 1.2 Second\n## 2. Two\n"
    sections = method_sections(doc)
    assert sections == {"1", "1.1", "1.2", "2"}
    assert missing_citations("METHOD 1.2, METHOD 2 and METHOD 1.3-1.4 and METHOD 3", sections) == ["1.3", "1.4", "3"]


def test_method_sections_are_numbered_in_order() -> None:
    text = METHOD.read_text(encoding="utf-8")
    chapters = [int(m.group(1)) for m in _CHAPTER.finditer(text)]
    assert chapters == list(range(1, len(chapters) + 1)), f"chapters out of order: {chapters}"
    current = 0
    expected_sub = 1
    for line in text.splitlines():
        head = _CHAPTER.match(line)
        if head:
            current, expected_sub = int(head.group(1)), 1
            continue
        sub = _SECTION.match(line)
        if sub:
            got = (int(sub.group(1)), int(sub.group(2)))
            assert got == (current, expected_sub), f"section {got[0]}.{got[1]} where {current}.{expected_sub} belongs"
            expected_sub += 1


def test_every_method_citation_names_an_existing_section() -> None:
    sections = method_sections(METHOD.read_text(encoding="utf-8"))
    problems = []
    n_citing = 0
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if path != METHOD and cited_sections(text):
            n_citing += 1
        for number in missing_citations(text, sections):
            problems.append(f"{path.relative_to(REPO)}: METHOD {number}")
    assert not problems, "citations of sections docs/METHOD.md does not have:\n" + "\n".join(problems)
    # the code explains itself by these citations; a scan that finds none has lost its files
    assert n_citing >= 20, f"only {n_citing} files cite docs/METHOD.md"


def test_no_citation_of_the_outside_spec_remains() -> None:
    offenders = []
    for path in project_files():
        if path == METHOD:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:100]}")
    assert not offenders, "cite docs/METHOD.md sections instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("doc", ["README.md", "docs/ARCHITECTURE.md"])
def test_method_is_linked(doc: str) -> None:
    assert "METHOD.md" in (REPO / doc).read_text(encoding="utf-8")
