"""Command-line answers that must come back fast: ``python -m gan_interp.train --help`` and a typo'd
config-group override (``model=dcgna``), each timed in a fresh interpreter (wall time, median of 3;
quick: 1). The config checks run before torch and Lightning are imported, so both should answer in
<= 2 s; the row also says whether ``--help`` created an output folder (it must not).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0


def _wall(args: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "GAN_INTERP_ROOT": cwd, "WANDB_MODE": "offline"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gan_interp.train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    return time.perf_counter() - start, proc


def _row(name: str, args: list[str], reps: int, expect_rc: int) -> dict:
    with tempfile.TemporaryDirectory() as cwd:
        runs = [_wall(args, cwd) for _ in range(reps)]
        created = sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*"))
    median = statistics.median(t for t, _ in runs)
    rcs = {proc.returncode for _, proc in runs}
    return {
        "name": name,
        "measured": f"{median:.2f} s",
        "target": f"<= {TARGET_S:.0f} s",
        "ok": median <= TARGET_S and rcs == {expect_rc} and not created,
        "detail": f"exit {sorted(rcs)}, median of {reps}; files created: {created[:3] or 'none'}",
    }


def run(quick: bool = False) -> list[dict]:
    reps = 1 if quick else 3
    return [
        _row("train_help", ["--help"], reps, expect_rc=0),
        _row("train_typo_override", ["model=dcgna"], reps, expect_rc=2),
    ]
