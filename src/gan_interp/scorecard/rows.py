"""One scorecard row: a probe reading on the reference model, at random init and on a planted control."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ScoreRow:
    """A probe reading next to its controls, with the criterion that decides whether the probe passes.

    ``reference`` / ``random_init`` / ``planted`` are the reading on the trained (reference) model, on the
    same architecture at random init, and on a planted control with a known answer; ``None`` where a
    column does not apply (say why in ``note``). ``passed`` is computed by the check that made the row from
    the stated ``criterion`` - never set by hand. Rows that fail stay in the table with what was learned.
    """

    probe: str  # probe family, e.g. "saliency", "directions", "dissection", "two-sample"
    reading: str  # what was measured, e.g. "spearman(|map|) trained vs top-randomised critic"
    reference: Any  # reading on the reference model (float, str or None)
    random_init: Any  # reading at random init (same architecture)
    planted: Any  # reading on the planted control (known answer)
    criterion: str  # the pass criterion in words, e.g. "reference > random_init + 0.1 and planted flagged"
    passed: bool | None  # None = not decidable (e.g. no reference model given)
    note: str = ""  # what was learned, especially for failing rows
    details: dict[str, Any] = field(default_factory=dict)  # raw numbers (per seed, per stage, ...) for results.json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")  # a pipe or newline inside a cell breaks the table


def rows_to_markdown(rows: list[ScoreRow]) -> str:
    """The README table: probe | reading | reference | random init | planted | criterion | pass."""
    head = "| probe | reading | reference | random init | planted | criterion | pass |\n" + "| --- " * 7 + "|"
    body = [
        f"| {_cell(r.probe)} | {_cell(r.reading)} | {_cell(r.reference)} | {_cell(r.random_init)} | "
        f"{_cell(r.planted)} | {_cell(r.criterion)} | {'-' if r.passed is None else ('PASS' if r.passed else 'FAIL')} |"
        for r in rows
    ]
    return "\n".join([head, *body]) + "\n"
