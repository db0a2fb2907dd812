"""Tests for gan_interp.data.download against a local HTTP server (no internet)."""

from __future__ import annotations

import contextlib
import csv
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_interp import io as gan_io
from gan_interp.data import download as dl
from gan_interp.errors import DataError
from gan_interp.io import TMP_MARK

FAST = dict(workers=4, retries=3, timeout=5.0, backoff=0.01)


def _jpeg(mode: str, size: int = 48, seed: int = 0) -> bytes:
    """Random-noise JPEG (noise keeps the file large enough to truncate mid-scan)."""
    rng = np.random.default_rng(seed)
    bands = len(mode) if mode != "L" else 1
    arr = rng.integers(0, 256, (size, size, bands), dtype=np.uint8).squeeze()
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, "JPEG", quality=95)
    return buf.getvalue()


RGB, GRAY, CMYK = _jpeg("RGB", seed=1), _jpeg("L", seed=2), _jpeg("CMYK", seed=3)
BIG = _jpeg("RGB", size=128, seed=4)
TRUNCATED = BIG[: len(BIG) // 2]


class _State:
    """Per-server request counters and behaviour knobs."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.flaky_failures = 2  # /flaky.jpg returns 500 this many times, then the image

    def hit(self, path: str) -> int:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            return self.hits[path]


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    static = {
        "/rgb.jpg": RGB,
        "/gray.jpg": GRAY,
        "/cmyk.jpg": CMYK,
        "/truncated.jpg": TRUNCATED,
        "/notimage.jpg": b"<html>not an image</html>" * 20,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            n = state.hit(self.path)
            if self.path in static:
                self._send(200, static[self.path])
            elif self.path == "/flaky.jpg":
                self._send(500, b"oops") if n <= state.flaky_failures else self._send(200, RGB)
            elif self.path == "/always500.jpg":
                self._send(500, b"down")
            elif self.path == "/ratelimited.jpg":
                self._send(429, b"slow down") if n == 1 else self._send(200, GRAY)
            elif self.path == "/forbidden.jpg":
                self._send(403, b"no")
            elif self.path == "/slow.jpg":
                time.sleep(1.0)
                self._send(200, RGB)
            else:
                self._send(404, b"not found")

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "image/jpeg" if code == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def server(monkeypatch):
    """Yield ``(base_url, state)`` for a threaded server on 127.0.0.1:<random port>."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = _State()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """Write a MovieGenre-like CSV in latin-1. ``rows`` are (imdbId, Title, Poster)."""
    with path.open("w", newline="", encoding="latin-1") as fh:
        w = csv.writer(fh)
        w.writerow(["imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster"])
        for imdb_id, title, poster in rows:
            w.writerow([imdb_id, f"http://www.imdb.com/title/tt{imdb_id}", title, "7.5", "Drama", poster])
    return path


@pytest.fixture
def movie_csv(tmp_path, server) -> Path:
    base, _ = server
    return _write_csv(
        tmp_path / "MovieGenre.csv",
        [
            ("1", "Amélie (2001)", f"{base}/rgb.jpg"),
            ("2", "Gray", f"{base}/gray.jpg"),
            ("3", "Cmyk", f"{base}/cmyk.jpg"),
            ("1", "Amélie duplicate", f"{base}/missing.jpg"),  # duplicate id: ignored
            ("4", "Gone", f"{base}/missing.jpg"),
            ("5", "Flaky", f"{base}/flaky.jpg"),
            ("6", "Truncated", f"{base}/truncated.jpg"),
            ("7", "Not an image", f"{base}/notimage.jpg"),
            ("8", "No poster", ""),
            ("9", "Forbidden", f"{base}/forbidden.jpg"),
            ("10", "Down", f"{base}/always500.jpg"),
            ("11", "Rate limited", f"{base}/ratelimited.jpg"),
        ],
    )


def _failures(out: Path) -> dict[str, tuple[str, int]]:
    with (out / "failures.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {r["imdbId"]: (r["reason"], int(r["attempts"])) for r in rows}


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if TMP_MARK in p.name or p.name.startswith(".")]


def test_first_run_saves_valid_posters_and_records_failures(server, movie_csv, tmp_path):
    _, state = server
    out = tmp_path / "posters"
    report = dl.download_posters(movie_csv, out, **FAST)

    assert (report.downloaded, report.skipped, report.failed, report.no_url, report.duplicates) == (5, 0, 5, 1, 1)
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(f"{i}.jpg" for i in (1, 2, 3, 5, 11))
    assert (out / "1.jpg").read_bytes() == RGB  # first row of the duplicate id wins, bytes untouched
    for name, mode in [("1", "RGB"), ("2", "L"), ("3", "CMYK"), ("5", "RGB"), ("11", "L")]:
        with Image.open(out / f"{name}.jpg") as img:
            img.load()
            assert img.mode == mode

    fails = _failures(out)
    assert set(fails) == {"4", "6", "7", "9", "10"}
    assert fails["4"] == ("http-404", 1)  # permanent: no retry
    assert fails["9"] == ("http-403", 1)
    assert fails["10"] == ("http-500", 4)  # 1 try + 3 retries
    assert fails["6"][0].startswith("invalid-image") and fails["6"][1] == 1
    assert fails["7"][0].startswith("invalid-image")
    assert [f.imdb_id for f in report.failures] == ["4", "6", "7", "9", "10"]  # CSV order

    assert state.hits["/flaky.jpg"] == 3  # two 500s then success
    assert state.hits["/ratelimited.jpg"] == 2
    assert state.hits["/missing.jpg"] == 1  # duplicate row never fetched
    assert _leftovers(out) == []


def test_second_run_resumes_without_redownloading(server, movie_csv, tmp_path):
    _, state = server
    out = tmp_path / "posters"
    dl.download_posters(movie_csv, out, **FAST)
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.jpg")}
    ok_paths = ("/rgb.jpg", "/gray.jpg", "/cmyk.jpg", "/flaky.jpg", "/ratelimited.jpg")
    hits_before = {k: state.hits[k] for k in ok_paths}

    report = dl.download_posters(movie_csv, out, **FAST)

    assert (report.downloaded, report.skipped, report.failed, report.no_url) == (0, 5, 5, 1)
    assert {k: state.hits[k] for k in ok_paths} == hits_before  # nothing existing was re-fetched
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.jpg")} == before
    assert set(_failures(out)) == {"4", "6", "7", "9", "10"}
    assert _leftovers(out) == []


def test_failure_disappears_once_it_succeeds(server, tmp_path):
    base, state = server
    csv_path = _write_csv(tmp_path / "m.csv", [("5", "Flaky", f"{base}/flaky.jpg")])
    out = tmp_path / "posters"
    first = dl.download_posters(csv_path, out, **{**FAST, "retries": 0})
    assert first.failed == 1 and _failures(out) == {"5": ("http-500", 1)}
    state.flaky_failures = 0
    second = dl.download_posters(csv_path, out, **FAST)
    assert (second.downloaded, second.failed) == (1, 0)
    assert _failures(out) == {}
    assert (out / "5.jpg").read_bytes() == RGB


def test_empty_existing_file_is_redownloaded_and_stale_temp_removed(server, tmp_path):
    base, _ = server
    csv_path = _write_csv(tmp_path / "m.csv", [("1", "A", f"{base}/rgb.jpg")])
    out = tmp_path / "posters"
    out.mkdir()
    (out / "1.jpg").write_bytes(b"")
    (out / f".1.jpg{TMP_MARK}abc123").write_bytes(b"partial")  # left by a killed run
    report = dl.download_posters(csv_path, out, **FAST)
    assert (report.downloaded, report.skipped) == (1, 0)
    assert (out / "1.jpg").read_bytes() == RGB
    assert _leftovers(out) == []


def test_failed_write_leaves_no_partial_file(server, tmp_path, monkeypatch):
    base, _ = server
    csv_path = _write_csv(tmp_path / "m.csv", [("1", "A", f"{base}/rgb.jpg")])
    out = tmp_path / "posters"

    def boom(src, dst):
        if str(dst).endswith(".jpg"):
            raise OSError("disk full")
        return real_replace(src, dst)

    real_replace = gan_io.os.replace
    monkeypatch.setattr(gan_io.os, "replace", boom)
    report = dl.download_posters(csv_path, out, **FAST)
    assert report.failed == 1 and "disk full" in report.failures[0].reason
    assert not (out / "1.jpg").exists()
    assert _leftovers(out) == []


def test_timeout_is_retried_then_reported(server, tmp_path):
    base, state = server
    csv_path = _write_csv(tmp_path / "m.csv", [("1", "Slow", f"{base}/slow.jpg")])
    out = tmp_path / "posters"
    report = dl.download_posters(csv_path, out, workers=1, retries=1, timeout=0.2, backoff=0.01)
    assert report.failures[0].reason == "timeout" and report.failures[0].attempts == 2
    assert state.hits["/slow.jpg"] == 2


def test_limit_counts_unique_ids(server, movie_csv, tmp_path):
    report = dl.download_posters(movie_csv, tmp_path / "p", limit=3, **FAST)
    assert (report.downloaded, report.failed, report.no_url) == (3, 0, 0)


def test_cli_success_prints_one_line_summary(server, movie_csv, tmp_path, capsys):
    out = tmp_path / "posters"
    code = dl.main(
        [
            "imdb",
            "--csv",
            str(movie_csv),
            "--out",
            str(out),
            "--workers",
            "4",
            "--retries",
            "3",
            "--timeout",
            "5",
            "--backoff",
            "0.01",
            "--limit",
            "3",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "downloaded=3" in lines[0] and "no-url=0" in lines[0]
    assert code == 0 and len(list(out.glob("*.jpg"))) == 3


def test_cli_exits_non_zero_when_nothing_was_downloaded(server, tmp_path, capsys):
    base, _ = server
    csv_path = _write_csv(tmp_path / "m.csv", [("1", "A", f"{base}/missing.jpg"), ("2", "B", f"{base}/missing.jpg")])
    code = dl.main(["imdb", "--csv", str(csv_path), "--out", str(tmp_path / "out"), "--retries", "0"])
    captured = capsys.readouterr()
    assert code == 1 and "downloaded=0" in captured.out and "failed=2" in captured.out
    assert (
        captured.err.strip()
        == f"error: no poster was downloaded; see {tmp_path / 'out' / 'failures.csv'} for the reasons"
    )
    assert dl.main(["imdb", "--csv", str(csv_path), "--out", str(tmp_path / "out"), "--limit", "0"]) == 1


def test_only_http_urls_are_fetched(tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(RGB)
    csv_path = _write_csv(tmp_path / "m.csv", [("1", "A", secret.as_uri()), ("2", "B", "ftp://example.invalid/x.jpg")])
    report = dl.download_posters(csv_path, tmp_path / "out", **FAST)
    assert report.downloaded == 0 and not list((tmp_path / "out").glob("*.jpg"))
    assert [f.reason for f in report.failures] == [
        "bad-url: only http(s) URLs are fetched, not file:// ones",
        "bad-url: only http(s) URLs are fetched, not ftp:// ones",
    ]


def test_cli_missing_csv_exits_with_one_line_message(tmp_path):
    missing = tmp_path / "nope" / "MovieGenre.csv"
    with pytest.raises(SystemExit) as exc:
        dl.main(["imdb", "--csv", str(missing), "--out", str(tmp_path / "out")])
    msg = str(exc.value.code)
    assert str(missing) in msg and "--csv" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_cli_csv_without_required_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,url\n1,http://x/1.jpg\n", encoding="latin-1")
    with pytest.raises(SystemExit) as exc:
        dl.main(["imdb", "--csv", str(bad), "--out", str(tmp_path / "out")])
    msg = str(exc.value.code)
    assert "imdbId" in msg and "Poster" in msg and str(bad) in msg and "\n" not in msg


def test_cli_rejects_unknown_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        dl.main(["celeba", "--csv", "x.csv", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_read_rows_latin1_dedup_and_bom(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(
        "\ufeffimdbId,Title,Poster\n1,Amélie,http://a/1.jpg\n1,Dup,http://a/x.jpg\n2,B,\n".encode("utf-8")
    )  # UTF-8 BOM read as latin-1 must not hide imdbId
    rows, no_url, dups = dl.read_poster_rows(path)
    assert rows == [("1", "http://a/1.jpg")] and (no_url, dups) == (1, 1)


def test_library_raises_data_error_and_cli_rejects_bad_option(tmp_path, movie_csv):
    with pytest.raises(DataError, match="nope.csv"):
        dl.download_posters(tmp_path / "nope.csv", tmp_path / "out")
    with pytest.raises(SystemExit) as exc:
        dl.main(["imdb", "--csv", str(movie_csv), "--out", str(tmp_path / "out"), "--workers", "0"])
    assert str(exc.value.code) == "error: invalid --workers 0: it must be >= 1"


def test_path_like_imdb_id_is_refused(server, tmp_path):
    base, state = server
    csv_path = _write_csv(tmp_path / "m.csv", [("../evil", "X", f"{base}/rgb.jpg")])
    report = dl.download_posters(csv_path, tmp_path / "posters", **FAST)
    assert report.failures[0].reason == "invalid-imdbId" and "/rgb.jpg" not in state.hits
    assert not (tmp_path / "evil.jpg").exists()


def test_ctrl_c_exits_cleanly_with_resume_hint(movie_csv, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "download_one", interrupted)
    with pytest.raises(SystemExit) as exc:
        dl.main(["imdb", "--csv", str(movie_csv), "--out", str(tmp_path / "out")])
    assert "re-run" in str(exc.value.code)
