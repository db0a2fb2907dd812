"""Probe scorecard (issue 12 point 2): every probe reading on a reference model, on the same architecture at
random init and on a planted control whose right answer is known, each with its pass criterion.

    python experiments/probe_scorecard/run.py                                  # settings in config.yaml
    python experiments/probe_scorecard/run.py --references refs.json --tiny --results-dir /tmp/sc
    python experiments/probe_scorecard/run.py --only two_sample,memorisation

``--references`` is a JSON object: model name -> checkpoint path (or ``{"checkpoint": path, ...}``); relative
paths are taken from the JSON file's folder. ``experiments/reference_models/run.py`` writes it. Writes
``results.md`` (per reference model the table probe | reading | reference | random init | planted | criterion |
pass, and the notes of its rows) and ``results.json`` (every row with its raw numbers) next to this file, or to
``--results-dir``.

A check is ``check_<name>(ref, rand, dm, *, seed=0, tiny=False) -> list[ScoreRow]`` (``ref`` the trained model,
``rand`` the same architecture at random init, ``dm`` the set-up data module); :data:`CHECKS` lists them in
table order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from gan_interp.errors import ConfigError
from gan_interp.io import write_json, write_text
from gan_interp.scorecard import ScoreRow, rows_to_markdown
from gan_interp.scorecard.actmax import check_actmax
from gan_interp.scorecard.directions import check_directions
from gan_interp.scorecard.dissection import check_dissection
from gan_interp.scorecard.memorisation import check_memorisation
from gan_interp.scorecard.models import load_trained, random_init_like
from gan_interp.scorecard.saliency import check_saliency
from gan_interp.scorecard.twosample import check_two_sample

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHECKS = [
    check_saliency,
    check_directions,
    check_dissection,
    check_two_sample,
    check_memorisation,
    check_actmax,
]  # table order; each check_<name>(ref, rand, dm, *, seed, tiny)


def check_name(check: Any) -> str:
    return check.__name__.removeprefix("check_")


def read_references(path: Path) -> dict[str, Path]:
    """Model name -> checkpoint path from the references JSON (see module doc)."""
    if not path.is_file():
        raise ConfigError(
            f"references file {path} does not exist; train the reference models "
            "(python experiments/reference_models/run.py) or pass --references <json: name -> checkpoint>"
        )
    refs = json.loads(path.read_text())
    if not isinstance(refs, dict) or not refs:
        raise ConfigError(f"references file {path} must be a non-empty JSON object: model name -> checkpoint path")
    out = {}
    for name, entry in refs.items():
        ckpt = entry.get("checkpoint") if isinstance(entry, dict) else entry
        if not isinstance(ckpt, str):
            raise ConfigError(f"references file {path}: {name!r} names no checkpoint path (got {entry!r})")
        out[name] = (path.parent / ckpt) if not Path(ckpt).is_absolute() else Path(ckpt)
    return out


def select_checks(only: str | None) -> list[Any]:
    """:data:`CHECKS`, or those named in ``only`` (comma-separated names without ``check_``)."""
    if not only:
        return list(CHECKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {check_name(c): c for c in CHECKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--only {','.join(unknown)}: unknown check(s); choose from {', '.join(known)}")
    return [known[n] for n in names]


def score_model(ckpt: Path, checks: list[Any], seed: int, tiny: bool, cache_dir: str | None) -> dict[str, Any]:
    """Every check on one reference model: rows and seconds per check."""
    ref, dm = load_trained(ckpt, cache_dir)
    dm.setup()
    rand = random_init_like(ref, seed)
    rows: list[ScoreRow] = []
    seconds: dict[str, float] = {}
    for check in checks:
        t0 = time.perf_counter()
        rows += check(ref, rand, dm, seed=seed, tiny=tiny)
        seconds[check_name(check)] = round(time.perf_counter() - t0, 1)
        print(f"  {check_name(check)}: {seconds[check_name(check)]} s", flush=True)
    return {"checkpoint": str(ckpt), "model": type(ref).__name__, "rows": rows, "seconds": seconds}


def model_section(name: str, result: dict[str, Any]) -> str:
    """One reference model's part of results.md: what was read, the table, the notes of its rows."""
    rows: list[ScoreRow] = result["rows"]
    passed = sum(r.passed is True for r in rows)
    decided = sum(r.passed is not None for r in rows)
    lines = [
        f"## {name}",
        "",
        f"Checkpoint `{result['checkpoint']}` ({result['model']}); {passed}/{decided} rows pass.",
        "",
        rows_to_markdown(rows),
    ]
    notes = [f"- {r.probe}, {r.reading}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    return "\n".join(lines)


def write_results(results: dict[str, dict], settings: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mode = "tiny (test) settings" if settings["tiny"] else "full settings"
    head = f"# Probe scorecard\n\n{mode}, seed {settings['seed']}; per reference model.\n"
    write_text(out / "results.md", "\n".join([head, *(model_section(n, r) for n, r in results.items())]))
    payload = {
        "settings": settings,
        "models": {n: {**r, "rows": [row.to_dict() for row in r["rows"]]} for n, r in results.items()},
    }
    write_json(payload, out / "results.json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    cfg = OmegaConf.load(HERE / "config.yaml")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--references", default=str(ROOT / cfg.references), help="JSON: model name -> checkpoint")
    p.add_argument("--tiny", action="store_true", help="tiny settings (the test's; readings are noisy)")
    p.add_argument("--results-dir", default=str(HERE), help="where results.md / results.json go")
    p.add_argument("--seed", type=int, default=int(cfg.seed))
    p.add_argument("--threads", type=int, default=cfg.threads)
    p.add_argument("--cache-dir", default=cfg.cache_dir, help="data/feature-net/segmenter cache")
    p.add_argument("--only", default=None, help="comma-separated checks: " + ", ".join(map(check_name, CHECKS)))
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(int(args.threads))
    checks = select_checks(args.only)
    references = read_references(Path(args.references))
    results = {}
    t0 = time.perf_counter()
    for name, ckpt in references.items():
        print(f"scoring {name} ({ckpt})", flush=True)
        results[name] = score_model(ckpt, checks, args.seed, args.tiny, args.cache_dir)
    settings = {"tiny": args.tiny, "seed": args.seed, "checks": [check_name(c) for c in checks]}
    settings["seconds_total"] = round(time.perf_counter() - t0, 1)
    write_results(results, settings, Path(args.results_dir))
    print(f"wrote {Path(args.results_dir) / 'results.md'} ({settings['seconds_total']} s)")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ConfigError as err:
        sys.exit(f"error: {err}")
