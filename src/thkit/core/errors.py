"""User-facing errors.

A user error is anything the person running thkit can fix (a spec, a file, a flag). It carries
everything needed to fix it, and the CLI prints it without a traceback and exits with status 2.
Bugs stay ordinary exceptions so that their tracebacks are kept.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

USER_ERROR_EXIT_CODE = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as the input allows."""

    message: str
    path: str = ""  # dotted spec path, e.g. "nodes.fuse.params.heds"
    source: str | None = None  # file name, or "--set" for command-line overrides
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based

    def format(self) -> str:
        where = self.source or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.col or 1}"
        subject = f" {self.path}:" if self.path else ""
        return f"{where}:{subject} {self.message}"


class ThkitError(Exception):
    """An error the user can fix; printed without a traceback, exit status 2."""

    exit_code = USER_ERROR_EXIT_CODE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class SpecError(ThkitError):
    """Every problem found in a spec, collected before anything was built."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=_problem_order)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in spec"
        super().__init__(header + "\n" + "\n".join(p.format() for p in self.problems))


def _problem_order(problem: Problem) -> tuple:
    return (problem.source or "", problem.line or 0, problem.col or 0, problem.path, problem.message)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def listing(choices: Iterable[str]) -> str:
    names = sorted(set(choices))
    return ", ".join(names) if names else "(none)"


def with_article(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
