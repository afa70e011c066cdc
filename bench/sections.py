"""bench/results.md holds one section per benchmark, each between its own markers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def marked(text: str, start: str, end: str) -> str | None:
    """What lies between the markers, or None."""
    if start in text and end in text:
        return text.split(start, 1)[1].split(end, 1)[0]
    return None


def write_section(path: Path, start: str, end: str, section: str) -> None:
    """Put `section` (markers included) where the file has the markers, or at its end."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if marked(text, start, end) is not None:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def write_analysed_section(
    path: Path, markers: tuple[str, str], analysis_markers: tuple[str, str], render: Callable[[str | None], str]
) -> str:
    """Write the section `render` makes from the hand-written analysis block it holds now (None if absent)."""
    analysis = marked(path.read_text(encoding="utf-8") if path.exists() else "", *analysis_markers)
    section = render(analysis.strip() if analysis is not None else None)
    write_section(path, *markers, section)
    return section


def analysis_lines(analysis: str | None, start: str, end: str) -> list[str]:
    """The hand-written analysis block between its markers, or a placeholder until the first full run."""
    return [start, analysis or "(analysis: to be written after a full run)", end]
