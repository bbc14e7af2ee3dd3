"""The ``candor`` commands written in README.md and docs/*.md, as the reader sees them.

A command is a line in a fenced code block that runs ``candor`` (``.venv/bin/candor``,
``candor``, optionally behind ``VAR=value`` assignments), with ``\\`` continuations
joined and trailing ``# comments`` dropped. Shell lines that only set a variable to a
command string, or are part of a script, are not commands.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
_CMD = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?candor\s+"
                  r"(?:serve|calibrate|eval|prepare-model)\b")


@dataclass(frozen=True)
class DocCommand:
    source: str  # file:line
    line: str  # as written (continuations joined, comment dropped)

    @property
    def env(self) -> dict[str, str]:
        words = shlex.split(self.line)
        return dict(w.split("=", 1) for w in words[: self._start(words)])

    @property
    def argv(self) -> list[str]:
        """The arguments after ``candor`` (up to a shell operator such as ``&``)."""
        words = shlex.split(self.line)
        rest = words[self._start(words) + 1:]
        cut = next((i for i, w in enumerate(rest) if w in ("&", "&&", ";", "|", "||")),
                   len(rest))
        return rest[:cut]

    @staticmethod
    def _start(words: list[str]) -> int:
        return next(i for i, w in enumerate(words) if w.endswith("candor"))


def blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced code block."""
    out, cur, start = [], None, 0
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            if cur is None:
                cur, start = [], i + 1
            else:
                out.append((start, cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return out


_SCRIPT = re.compile(r"^(?:\.venv/bin/)?python\s+((?:benchmarks|docs|examples)/\S+\.py)\b")


def script_commands() -> list[tuple[DocCommand, str]]:
    """``python <script>.py ...`` lines of the docs, with the script path."""
    out = []
    for cmd in doc_commands(pattern=_SCRIPT):
        m = _SCRIPT.match(cmd.line)
        assert m is not None
        out.append((cmd, m.group(1)))
    return out


def doc_commands(pattern: re.Pattern[str] = _CMD) -> list[DocCommand]:
    found = []
    for path in DOCS:
        for start, lines in blocks(path.read_text(encoding="utf-8")):
            i = 0
            while i < len(lines):
                first, line = i, lines[i].rstrip()
                while line.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    line = line[:-1].rstrip() + " " + lines[i].strip()
                i += 1
                line = re.sub(r"\s+#.*$", "", line.strip())
                if pattern.match(line):
                    found.append(DocCommand(f"{path.name}:{start + first}", line))
    return found
