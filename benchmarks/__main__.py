"""Run all benchmarks and print a table: python -m benchmarks [--quick] [--only NAME]."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not for the record)")
    parser.add_argument("--only", default=None, help="run only bench_<ONLY>.py")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n == f"bench_{args.only}"]
    rows: list[dict] = []
    for name in names:
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        for row in module.run(quick=args.quick):
            rows.append({"bench": name.removeprefix("bench_"), **row})
        print(f"[{name}] done in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    width = max((len(r["name"]) for r in rows), default=10)
    print(f"{'benchmark':<12} {'measure':<{width}} {'measured':>12} {'target':>12}  ok  detail")
    for r in rows:
        print(
            f"{r['bench']:<12} {r['name']:<{width}} {r['measured']:>12} {r['target']:>12}  "
            f"{'yes' if r['ok'] else 'NO ':<3} {r.get('detail', '')}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
