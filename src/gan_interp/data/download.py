"""Download poster images for the Kaggle "Movie Genre from its Poster" dataset.

Usage::

    python -m gan_interp.data.download imdb --csv MovieGenre.csv --out data/imdb/posters

Posters are saved as ``<out>/<imdbId>.jpg`` (original bytes, not re-encoded; some are
grayscale or CMYK, so convert to RGB when loading). Re-running resumes: existing
non-empty files are skipped and ``<out>/failures.csv`` is rewritten. Stdlib + Pillow only.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from gan_interp.errors import ConfigError, DataError, GanInterpError
from gan_interp.io import TMP_MARK, write_bytes, write_text
from gan_interp.progress import Progress

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("imdbId", "Poster")
ALLOWED_SCHEMES = ("http", "https")  # never file://, ftp://, data: ... from a CSV found on the internet
FAILURES_FILE = "failures.csv"
USER_AGENT = "gan-interp-poster-downloader/0.1 (+python urllib)"
_ID_RE = re.compile(r"[A-Za-z0-9_-]+")  # imdbIds become file names: never let one escape <out>


@dataclass(frozen=True)
class Failure:
    """One poster that could not be downloaded (one row of failures.csv)."""

    imdb_id: str
    url: str
    reason: str
    attempts: int


@dataclass
class DownloadReport:
    """Counts for one run; ``failures`` lists every failed poster in CSV order."""

    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    no_url: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        """One-line human-readable summary."""
        return (
            f"downloaded={self.downloaded} skipped(existing)={self.skipped} "
            f"failed={self.failed} no-url={self.no_url} duplicates={self.duplicates}"
        )


class FetchError(Exception):
    """A failed attempt; ``retry`` says whether it is transient (network, HTTP 5xx/429)."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def read_poster_rows(csv_path: Path, limit: int | None = None) -> tuple[list[tuple[str, str]], int, int]:
    """Read ``(imdbId, url)`` pairs from the latin-1 CSV, keeping each imdbId's first row.

    ``limit`` keeps the first N unique ids. Returns ``(rows_with_url, no_url, duplicates)``.
    Raises ``DataError`` (one line, user-facing) for a missing or malformed CSV.
    """
    if not csv_path.is_file():
        raise DataError(
            f"CSV file not found: '{csv_path}'. Download MovieGenre.csv from Kaggle "
            "('Movie Genre from its Poster') and pass its path with --csv."
        )
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    no_url = duplicates = 0
    with csv_path.open(newline="", encoding="latin-1") as fh:
        reader = csv.DictReader(fh)
        try:
            header = [(h or "").replace("ï»¿", "").strip() for h in (reader.fieldnames or [])]  # drop a BOM
            if missing := [c for c in REQUIRED_COLUMNS if c not in header]:
                raise DataError(
                    f"CSV '{csv_path}' lacks column(s) {missing}; found {header}. "
                    "Pass the original MovieGenre.csv (it needs 'imdbId' and 'Poster')."
                )
            reader.fieldnames = header
            for rec in reader:
                imdb_id, url = (rec.get("imdbId") or "").strip(), (rec.get("Poster") or "").strip()
                if not imdb_id or imdb_id in seen:
                    duplicates += bool(imdb_id)
                    continue
                if limit is not None and len(seen) >= limit:
                    break
                seen.add(imdb_id)
                if url:
                    rows.append((imdb_id, url))
                else:
                    no_url += 1
        except csv.Error as exc:
            raise DataError(f"cannot parse CSV '{csv_path}' (line {reader.line_num}): {exc}") from exc
    return rows, no_url, duplicates


def validate_image(data: bytes) -> None:
    """Raise a permanent ``FetchError`` unless ``data`` fully decodes as an image.

    Uses ``load()``, not ``verify()``: a truncated JPEG passes verify but fails load
    (as long as ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` keeps its default, False).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise FetchError(f"invalid-image: {exc}", retry=False) from exc


def fetch(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> bytes:
    """GET ``url`` once; raise ``FetchError`` classified as transient or permanent (only http(s) URLs)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise FetchError(f"bad-url: only http(s) URLs are fetched, not {scheme or 'a relative'}:// ones", retry=False)
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise FetchError(f"http-{exc.code}", retry=exc.code >= 500 or exc.code == 429) from exc
    except (ValueError, http.client.InvalidURL) as exc:  # malformed / unsupported URL
        raise FetchError(f"bad-url: {exc}", retry=False) from exc
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError)
        raise FetchError("timeout" if timed_out else f"network: {exc.reason}", retry=True) from exc
    except TimeoutError as exc:
        raise FetchError("timeout", retry=True) from exc
    except (OSError, http.client.HTTPException) as exc:  # reset connection, incomplete read, ...
        raise FetchError(f"network: {type(exc).__name__}: {exc}", retry=True) from exc


def download_one(
    opener: urllib.request.OpenerDirector,
    imdb_id: str,
    url: str,
    dest: Path,
    retries: int,
    timeout: float,
    backoff: float,
) -> Failure | None:
    """Fetch, validate and save one poster, retrying transient errors; ``None`` on success."""
    for attempt in range(1, retries + 2):
        try:
            data = fetch(opener, url, timeout)
            validate_image(data)
            write_bytes(dest, data)
            return None
        except FetchError as exc:
            if not exc.retry or attempt > retries:
                return Failure(imdb_id, url, str(exc), attempt)
            log.debug("%s: %s (attempt %d), retrying", imdb_id, exc, attempt)
            time.sleep(backoff * 2 ** (attempt - 1))
        except Exception as exc:  # e.g. disk full: record it, never abort the whole run
            return Failure(imdb_id, url, f"error: {type(exc).__name__}: {exc}", attempt)
    raise AssertionError("unreachable")


def write_failures(out_dir: Path, failures: Sequence[Failure]) -> Path:
    """(Re)write ``<out>/failures.csv`` atomically; the header is written even when empty."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["imdbId", "url", "reason", "attempts"])
    writer.writerows([f.imdb_id, f.url, f.reason, f.attempts] for f in failures)
    write_text(out_dir / FAILURES_FILE, buf.getvalue())
    return out_dir / FAILURES_FILE


def _check_options(workers: int, retries: int, timeout: float, backoff: float, limit: int | None) -> None:
    """Raise ``ConfigError`` naming the first out-of-range option."""
    checks = [
        ("workers", workers, workers >= 1, ">= 1"),
        ("retries", retries, retries >= 0, ">= 0"),
        ("timeout", timeout, timeout > 0, "> 0"),
        ("backoff", backoff, backoff >= 0, ">= 0"),
        ("limit", limit, limit is None or limit >= 0, ">= 0"),
    ]
    for name, value, ok, rule in checks:
        if not ok:
            raise ConfigError(f"invalid --{name} {value}: it must be {rule}")


def _run_pool(jobs: list[tuple[int, str, str]], out: Path, workers: int, **kw: float) -> dict[int, Failure | None]:
    """Run ``download_one`` for each ``(index, imdbId, url)`` job; map index -> result."""
    opener = urllib.request.build_opener()  # reads the *_proxy env vars now
    results: dict[int, Failure | None] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool, Progress(len(jobs), "download", unit="posters") as progress:
        futures = {pool.submit(download_one, opener, i, url, out / f"{i}.jpg", **kw): idx for idx, i, url in jobs}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                progress.update(1)
        except BaseException:  # Ctrl-C: drop queued jobs; in-flight writes still finish atomically
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def download_posters(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    workers: int = 16,
    retries: int = 3,
    timeout: float = 20.0,
    backoff: float = 0.5,
    limit: int | None = None,
) -> DownloadReport:
    """Download every poster listed in ``csv_path`` into ``out_dir``.

    Resumable: existing non-empty ``<imdbId>.jpg`` files are skipped and stale temp
    files from interrupted runs removed. ``retries`` counts extra attempts after the
    first on network errors, HTTP 5xx and 429 (sleeping ``backoff * 2**k`` seconds).
    ``limit`` keeps the first N unique imdbIds. Rewrites ``<out>/failures.csv``.
    """
    _check_options(workers, retries, timeout, backoff, limit)
    rows, no_url, duplicates = read_poster_rows(Path(csv_path), limit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f".*{TMP_MARK}*"):  # temp files of an interrupted earlier run
        stale.unlink(missing_ok=True)
    report = DownloadReport(no_url=no_url, duplicates=duplicates)
    results: dict[int, Failure | None] = {}
    jobs: list[tuple[int, str, str]] = []
    for idx, (imdb_id, url) in enumerate(rows):
        dest = out / f"{imdb_id}.jpg"
        if not _ID_RE.fullmatch(imdb_id):
            results[idx] = Failure(imdb_id, url, "invalid-imdbId", 0)
        elif dest.is_file() and dest.stat().st_size > 0:
            report.skipped += 1
        else:
            jobs.append((idx, imdb_id, url))
    results.update(_run_pool(jobs, out, workers, retries=retries, timeout=timeout, backoff=backoff))
    report.failures = [results[i] for i in sorted(results) if results[i] is not None]  # CSV order
    report.failed = len(report.failures)
    report.downloaded = sum(results[idx] is None for idx, _, _ in jobs)
    write_failures(out, report.failures)
    return report


def _build_parser() -> argparse.ArgumentParser:
    """The ``python -m gan_interp.data.download`` argument parser."""
    p = argparse.ArgumentParser(prog="python -m gan_interp.data.download", description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=["imdb"], help="dataset to download (only 'imdb' for now)")
    p.add_argument("--csv", required=True, type=Path, help="path to MovieGenre.csv (latin-1)")
    p.add_argument("--out", required=True, type=Path, help="output folder for <imdbId>.jpg files")
    p.add_argument("--workers", type=int, default=16, help="parallel download threads (default 16)")
    p.add_argument("--retries", type=int, default=3, help="extra attempts on transient errors (default 3)")
    p.add_argument("--timeout", type=float, default=20.0, help="per-request timeout, seconds (default 20)")
    p.add_argument("--backoff", type=float, default=0.5, help="first retry delay, seconds, doubling (default 0.5)")
    p.add_argument("--limit", type=int, default=None, help="only process the first N unique imdbIds")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print a one-line summary and return the exit code: 0 when posters are there
    (downloaded now or before), 1 when none is (every download failed); bad input exits with one
    ``error: ...`` line (exit 1), a bad option with argparse's message (exit 2)."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = download_posters(
            args.csv,
            args.out,
            workers=args.workers,
            retries=args.retries,
            timeout=args.timeout,
            backoff=args.backoff,
            limit=args.limit,
        )
    except (GanInterpError, OSError) as exc:  # OSError: e.g. --out is an existing file
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        raise SystemExit("interrupted: finished posters are kept; re-run the same command to resume") from None
    print(f"{args.dataset} posters -> {args.out}: {report.summary()} (failures: {args.out / FAILURES_FILE})")
    if report.downloaded + report.skipped == 0:
        print(f"error: no poster was downloaded; see {args.out / FAILURES_FILE} for the reasons", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
