"""HTML building blocks of the review page: escaping, embedded images, figures with captions, sliders,
tabs and tables. Plain HTML + CSS + a few lines of JS; every image is a base64 ``data:`` URI.

Small images are scaled up by a whole factor (``img_tag(..., min_px=...)``: width/height attributes)
and drawn without smoothing (class ``px``: CSS ``image-rendering: pixelated``), so a 32 px sample or a
4 x 4 filter stays sharp; plots are drawn as they are.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from pathlib import Path
from typing import Any

from gan_interp.io import png_caption
from gan_interp.report.tables import fmt as fmt_number

FIGURE_MIN_PX = 192  # probe / k-GAN figures narrower than this are scaled up by a whole factor
SAMPLES_MIN_PX = 512  # the sample grids and the memorisation galleries
TABLE_ROWS = 20  # rows shown of a probe's table

CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}h3{margin-bottom:6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}td.best{font-weight:bold;background:#e8f6e8}
img{max-width:100%;height:auto}img.px{image-rendering:pixelated}.thumb{max-width:96px}
.gallery{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.gallery figure{margin:0;max-width:100%}
figcaption{font-size:12px;color:#555;max-width:560px}
.slider .frame{display:none}.slider .frame.on{display:block}.slider input{width:320px;vertical-align:middle}
.tabs button{border:1px solid #bbb;background:#f6f6f6;padding:4px 10px;cursor:pointer;margin-right:2px}
.tabs button.on{background:#fff;border-bottom-color:#fff;font-weight:bold}
.tab{display:none;border-top:1px solid #bbb;padding-top:8px}
.tab.on{display:block}pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:480px}
.note{color:#666;font-size:13px}.scroll{overflow-x:auto}.fail{color:#a00;font-weight:bold}
.readings{max-height:360px;overflow:auto;display:inline-block;vertical-align:top;margin-right:16px}
.interrupted{color:#a60;font-weight:bold}
#imgstatus{color:#666;font-size:12px}
"""

# on load: how many images decoded, and how many small data images (narrower than FIGURE_MIN_PX) on screen
# are drawn scaled up (>= 2x) without smoothing - body attributes the headless-browser test reads
JS = """
function slide(el){var f=el.closest('.slider').querySelectorAll('.frame');
 f.forEach(function(x,i){x.classList.toggle('on',i==el.value)});
 el.parentNode.querySelector('.lab').textContent=f[el.value].dataset.label;}
function tab(btn,id){var box=btn.closest('.tabbox');
 box.querySelectorAll(':scope>.tabs>button').forEach(function(b){b.classList.toggle('on',b==btn)});
 box.querySelectorAll(':scope>.tab').forEach(function(t){t.classList.toggle('on',t.id==id)});}
window.addEventListener('load',function(){var imgs=document.images,ok=0,small=0,sharp=0;
 for(var i=0;i<imgs.length;i++){var im=imgs[i];if(im.complete&&im.naturalWidth>0)ok++;
  if(im.classList.contains('px')&&im.naturalWidth>0&&im.naturalWidth<MIN_PX&&im.offsetParent!==null){small++;
   var w=im.getBoundingClientRect().width;
   if(w>=2*im.naturalWidth&&getComputedStyle(im).imageRendering=='pixelated')sharp++;}}
 var b=document.body;b.setAttribute('data-images-total',imgs.length);b.setAttribute('data-images-loaded',ok);
 b.setAttribute('data-small-shown',small);b.setAttribute('data-small-scaled',sharp);
 var s=document.getElementById('imgstatus');if(s)s.textContent=ok+' of '+imgs.length+' images loaded';});
""".replace("MIN_PX", str(FIGURE_MIN_PX))


class Ids:
    """Unique element ids (``s1``, ``t2``, ...) for one page."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any) -> str:
    """A table cell: numbers through the one formatter (4 significant digits), a short list as its
    formatted items, everything HTML-escaped."""
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v)
    return esc(fmt_number(v, 4, significant=True))


def data_uri(png: bytes | Path, mime: str = "image/png") -> str:
    raw = png.read_bytes() if isinstance(png, Path) else png
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def png_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when ``raw`` is no PNG."""
    if len(raw) < 24 or raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", raw[16:24])


def img_tag(src: bytes | Path, alt: str, cls: str = "", min_px: int = 0) -> str:
    """An embedded image. ``min_px`` > 0 marks a data image (class ``px``: drawn without smoothing);
    one narrower than ``min_px`` is scaled up by the smallest whole factor that reaches it."""
    raw = src.read_bytes() if isinstance(src, Path) else src
    classes = " ".join(c for c in (cls, "px" if min_px else "") if c)
    size = ""
    wh = png_size(raw) if min_px else None
    if wh and wh[0] < min_px:
        k = math.ceil(min_px / wh[0])
        size = f' width="{wh[0] * k}" height="{wh[1] * k}"'
    cls_attr = f' class="{classes}"' if classes else ""
    return f'<img src="{data_uri(raw)}" alt="{esc(alt)}"{cls_attr}{size}>'


def figure(path: Path, min_px: int = FIGURE_MIN_PX, cls: str = "") -> str:
    """An image file with its caption (stored in the PNG; else its file name) below it."""
    caption = png_caption(path)
    text = (
        f"<b>{esc(path.stem)}</b>: {esc(caption)}" if caption and caption != path.stem else f"<b>{esc(path.stem)}</b>"
    )
    return f"<figure>{img_tag(path, caption or path.stem, cls, min_px)}<figcaption>{text}</figcaption></figure>"


def gallery(paths: list[Path], min_px: int = FIGURE_MIN_PX) -> str:
    return "<div class='gallery'>" + "".join(figure(p, min_px) for p in paths) + "</div>"


def slider(frames: list[tuple[str, str]], ids: Ids) -> str:
    """Frames (label, html) with a range input; the last frame is shown first."""
    if not frames:
        return ""
    last = len(frames) - 1
    parts = [
        f'<div class="slider" id="{ids("s")}"><div><input type="range" min="0" max="{last}" value="{last}" '
        f'oninput="slide(this)"> <span class="lab">{esc(frames[-1][0])}</span></div>'
    ]
    for i, (label, body) in enumerate(frames):
        parts.append(f'<div class="frame{" on" if i == last else ""}" data-label="{esc(label)}">{body}</div>')
    parts.append("</div>")
    return "".join(parts)


def tabs(items: list[tuple[str, str]], ids: Ids) -> str:
    if not items:
        return ""
    names = [ids("t") for _ in items]
    buttons = "".join(
        f'<button class="{"on" if i == 0 else ""}" onclick="tab(this,\'{n}\')">{esc(label)}</button>'
        for i, ((label, _), n) in enumerate(zip(items, names))
    )
    panes = "".join(
        f'<div class="tab{" on" if i == 0 else ""}" id="{n}">{body}</div>'
        for i, ((_, body), n) in enumerate(zip(items, names))
    )
    return f'<div class="tabbox"><div class="tabs">{buttons}</div>{panes}</div>'


def kv_table(values: dict[str, Any], limit: int | None = 40) -> str:
    """Key / value rows (numbers, strings, booleans and short lists); ``limit=None``: all of them."""
    rows = [(k, v) for k, v in values.items() if isinstance(v, (int, float, str, bool, list))][:limit]
    if not rows:
        return ""
    return "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td>{fmt(v)}</td></tr>' for k, v in rows) + "</table>"


def html_table(columns: list[Any], rows: list[list[Any]], limit: int = TABLE_ROWS) -> str:
    """A table with a header row; rows past ``limit`` are counted in a note."""
    head = "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>" for r in rows[:limit])
    more = f"<p class='note'>{len(rows) - limit} more rows in the file</p>" if len(rows) > limit else ""
    return f"<table>{head}{body}</table>{more}"
