"""Reporting: the static HTML review page, the reader of run folders it and the studies share, and
the study helpers (tables, results files) of ``experiments/<study>/run.py``.

* :mod:`~gan_interp.report.page` - ``python -m gan_interp.report <run or sweep dir>`` -> ``report.html``;
* :mod:`~gan_interp.report.html` - its HTML pieces (embedded images with captions, sliders, tabs, tables);
* :mod:`~gan_interp.report.run_data` - what a run left on disk (config, metrics, curves, images, probes);
* :mod:`~gan_interp.report.study` - launch a study's sweep, read its jobs, write ``results.md/json``;
* :mod:`~gan_interp.report.tables` - the one number formatter, mean +/- sd, Markdown tables.
"""

from gan_interp.report.page import build_report, main, write_report
from gan_interp.report.run_data import RunData, collect_run, find_runs

__all__ = ["RunData", "build_report", "collect_run", "find_runs", "main", "write_report"]
