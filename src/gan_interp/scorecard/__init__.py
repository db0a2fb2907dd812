"""Probe scorecard: every probe reading scored on a trained model, the same architecture at random init
and a planted control whose right answer is known (issue 12 point 2; experiments/probe_scorecard/).

Each check module (``saliency``, ``directions``, ``actmax``, ``twosample``, ``memorisation``, ...) exposes
functions that return :class:`ScoreRow` objects; ``experiments/probe_scorecard/run.py`` collects them into
the README table ``probe | reading | reference | random init | planted | criterion | pass``.
"""

from gan_interp.scorecard.rows import ScoreRow, rows_to_markdown

__all__ = ["ScoreRow", "rows_to_markdown"]
