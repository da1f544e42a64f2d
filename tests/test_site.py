"""The built book site, checked as a reader sees it: in headless Chromium, at 1280 px and 390 px.

The site is built once per test session in quick mode (the same build `make book` runs, from
the chapters nbmake has just executed when the whole suite runs). Chromium then opens every page
from the built files, with every outside host unresolvable, at a desktop width and a phone width,
waits until MathJax has typeset, and we check what a reader would trip over:

* **figures**: every figure a chapter's code drew is an image on its page (the figure audit of
  ``snnlab.viz.audit`` logs what each cell drew; a page with fewer images, a figure drawn but
  never output, or an image that does not load fails), and every figure is readable: its smallest
  font, at the size the page shows it, is at least 9 pt;
* **math**: every formula is typeset; no ``$...$``, ``\\frac`` or other TeX is left in the text a
  reader sees (code excluded);
* **overflow**: no element is wider than the text column, and nothing scrolls sideways except
  code (which must not be re-wrapped) and, on the phone only, wide tables (a ten-column table
  cannot be legible in 358 px; it scrolls inside its own box);
* **noise**: no frozen progress bar and no load-average lines in the body (run times and load live
  in the collapsed "How this page was computed" note);
* **explorers**: static HTML (no "Loading widget..."), and every slider changes the figure;
* **teaching**: every chapter opens with its goals and prerequisites and ends with a self-check
  whose answers are folded and computed; each mechanism diagram is on its page; every notebook
  page offers itself as an executed ``.ipynb`` that Chromium downloads with no network.

Full-page screenshots of every page at both widths (viewport-high slices) are written to
``test-artifacts/<page>/``. Chromium is installed by ``make test`` when missing and running as
root; without it the browser checks are skipped with the reason, except in CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import build_book  # noqa: E402
from chromium import CDPError, Chromium, find_chromium  # noqa: E402
from conftest import toc_files  # noqa: E402

from snnlab.viz.audit import IMAGE_MIME_TYPES, audit_problems, read_log  # noqa: E402

PAGES = toc_files()
VIEWPORTS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}
MIN_FONT_PT = 9.0
"""Smallest font a figure may show at the size the page displays it (CSS points)."""


# -- building ----------------------------------------------------------------------------------

@dataclass
class Site:
    html: Path
    executed: dict[str, Path]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Site:
    """The book built in quick mode, with the executed notebooks it was built from (or, with
    ``SNNLAB_SITE=DIR``, the site already built in ``DIR/_build``: ``SNNLAB_SITE=book`` checks
    what `make book` built in full mode).

    When nbmake has just executed every chapter (the whole suite runs the notebooks first), the
    site is built from those executed notebooks; otherwise the chapters are executed here.
    """
    from conftest import executed_chapters

    built = os.environ.get("SNNLAB_SITE")
    if built:  # check a site already built, e.g. `make book`'s full-mode build: SNNLAB_SITE=book
        root = Path(built).resolve()
        html, folder = root / "_build" / "html", root / "_build" / "executed"
        if not (html / "index.html").exists() or not folder.is_dir():
            pytest.fail(f"SNNLAB_SITE={built}: no built site there (expected {html}/index.html and "
                        f"{folder}/, as `python scripts/build_book.py --output {built}` writes them)")
        executed = {src.stem: folder / f"{src.stem}.ipynb" for src in build_book.chapter_sources()}
        missing = [name for name, nb in executed.items() if not nb.exists()]
        if missing:
            pytest.fail(f"SNNLAB_SITE={built}: chapters never executed there: {missing}")
        return Site(html, executed)
    out = tmp_path_factory.mktemp("book")
    executed = executed_chapters()
    if executed is None:
        executed = build_book.execute_all(out / "_build" / "executed", quick=True)
    html = build_book.build(out, quick=True, executed=executed)
    assert (html / "index.html").exists()
    return Site(html, executed)


def notebook_figures(notebook: Path) -> dict:
    """What an executed chapter put on its page: its image outputs (with the audit's font and
    dpi for each, in order), its explorers, and the figures its code drew."""
    nb = json.loads(notebook.read_text())
    records = {r["execution_count"]: r["figures"] for r in read_log(build_book.figure_log(notebook))}
    images, explorers = [], 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        drawn = records.get(cell.get("execution_count"), [])
        k = 0
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(m in data for m in IMAGE_MIME_TYPES):
                images.append(drawn[k] if k < len(drawn) else {})
                k += 1
            elif 'class="snnlab-explorer"' in "".join(data.get("text/html", "")):
                explorers += 1
    return {"images": images, "explorers": explorers, "drawn": sum(len(f) for f in records.values()),
            "problems": audit_problems(nb, read_log(build_book.figure_log(notebook)), notebook.stem)}


# -- the browser -------------------------------------------------------------------------------

# Everything the checks need from a rendered page, measured in one pass.
MEASURE_JS = r"""
(function () {
  // MathJax's assistive MathML is clipped out of sight but still counts in scrollWidth
  var hide = document.createElement('style');
  hide.textContent = 'mjx-assistive-mml { display: none !important; }';
  document.head.appendChild(hide);
  var article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  var style = getComputedStyle(article);
  var box = article.getBoundingClientRect();
  var colLeft = box.left + parseFloat(style.paddingLeft), colRight = box.right - parseFloat(style.paddingRight);
  var phone = window.innerWidth < 600;
  function describe(el) {
    var name = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ?
      '.' + el.className.trim().split(/\s+/).slice(0, 3).join('.') : '');
    var text = (el.textContent || el.getAttribute('alt') || '').replace(/\s+/g, ' ').trim().slice(0, 70);
    var section = el.closest('section'); var h = section && section.querySelector('h1,h2,h3');
    return name + ' "' + text + '"' + (h ? ' (in "' + h.textContent.replace(/[#\s]+$/, '').trim().slice(0, 50) + '")' : '');
  }
  function isCode(el) {
    return !!el.closest('.cell_input, div.highlight, pre.literal-block') && !el.closest('.cell_output');
  }
  function isTableBox(el) {
    return el.matches('.pst-scrollable-table-container, .snnlab-table-wrap');
  }
  var overflow = [], scrolls = [];
  var doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1)
    overflow.push('the page is ' + doc.scrollWidth + ' px wide in a ' + window.innerWidth + ' px window');
  article.querySelectorAll('*').forEach(function (el) {
    if (el.closest('mjx-assistive-mml, script, style, template')) return;
    var cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') return;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return;
    var ox = cs.overflowX;
    if (ox !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
      var what = describe(el) + ': content ' + el.scrollWidth + ' px in a ' + el.clientWidth + ' px box';
      if (isCode(el) || (phone && isTableBox(el))) scrolls.push(what);
      else overflow.push(what + (ox === 'hidden' || ox === 'clip' ? ' (cut off)' : ' (scrolls sideways)'));
    }
    if (r.right > colRight + 1 || r.left < colLeft - 1) {
      for (var a = el.parentElement; a && a !== article; a = a.parentElement)
        if (getComputedStyle(a).overflowX !== 'visible') return;  // clipped: its box is checked above
      overflow.push(describe(el) + ': sticks out of the ' + Math.round(colRight - colLeft) + ' px column by ' +
                    Math.round(Math.max(r.right - colRight, colLeft - r.left)) + ' px');
    }
  });
  // the text a reader sees (code excluded; a collapsed solution counts: a reader opens it)
  var clone = article.cloneNode(true);
  clone.querySelectorAll('.cell_input, mjx-container, script, style, .headerlink, template').forEach(function (n) { n.remove(); });
  clone.querySelectorAll('pre, code, div.highlight').forEach(function (n) { if (!n.closest('.cell_output')) n.remove(); });
  var record = clone.querySelector('details.snnlab-run-record');
  var recordText = record ? record.textContent : '';
  if (record) record.remove();
  var outputText = Array.prototype.map.call(clone.querySelectorAll('.cell_output'),
                                            function (o) { return o.textContent; }).join('\n');
  var images = [];
  article.querySelectorAll('img').forEach(function (img) {
    var explorer = img.closest('.snnlab-explorer');
    images.push({explorer: !!explorer, output: !!img.closest('.cell_output'), natural: img.naturalWidth,
                 shown: img.getBoundingClientRect().width, dpi: parseFloat(img.dataset.dpi || 'NaN'),
                 minFont: parseFloat(img.dataset.minFontPt || 'NaN'), what: describe(img),
                 figure: (img.closest('figure[id]') || {id: ''}).id});
  });
  hide.remove();
  var maths = article.querySelectorAll('.math');
  var untypeset = [];
  maths.forEach(function (m) { if (!m.querySelector('mjx-container')) untypeset.push(m.textContent.slice(0, 60)); });
  return {width: window.innerWidth, overflow: overflow, scrolls: scrolls, text: clone.textContent,
          outputText: outputText, recordText: recordText, hasRecord: !!record, images: images, maths: maths.length, untypeset: untypeset,
          widgets: (document.body.innerText.match(/Loading widget/g) || []).length};
})()
"""

# Moves every slider of every explorer by one step and reports whether the frame changed.
SLIDERS_JS = r"""
(function () {
  var results = [];
  document.querySelectorAll('.snnlab-explorer').forEach(function (root, e) {
    var img = root.querySelector('img');
    root.querySelectorAll('input[type=range]').forEach(function (input) {
      var before = img.src;
      input.value = (parseInt(input.value, 10) + 1) % (parseInt(input.max, 10) + 1);
      input.dispatchEvent(new Event('input'));
      results.push({explorer: e, slider: input.getAttribute('aria-label'), changed: before !== img.src});
    });
  });
  return results;
})()
"""


@pytest.fixture(scope="session")
def rendered(site, tmp_path_factory) -> dict:
    """Every page measured in Chromium at both widths (and screenshotted): {(page, viewport): data}.

    The phone is emulated twice: as a phone (``mobile``: a page wider than the screen makes the
    browser zoom out, which ``phone_layout_width`` records, and the screenshots show what a reader
    gets), and as a 390 px window that cannot zoom out, where each element too wide shows up."""
    if find_chromium() is None:
        reason = ("no Chromium found. `make test` installs Debian's chromium when run as root; otherwise "
                  "install it yourself (sudo apt-get install chromium).")
        if os.environ.get("CI"):
            pytest.fail("the browser check must run in CI, but " + reason)
        pytest.skip(reason)
    # one browser per viewport, side by side (rendering and screenshots keep a core busy each)
    profiles = {viewport: tmp_path_factory.mktemp(f"chromium-{viewport}") for viewport in VIEWPORTS}
    with ThreadPoolExecutor(len(VIEWPORTS)) as pool:
        parts = [pool.submit(_render_viewport, site, viewport, profiles[viewport]) for viewport in VIEWPORTS]
        return {key: data for part in parts for key, data in part.result().items()}


def _render_viewport(site, viewport: str, profile: Path) -> dict:
    """Every page in one Chromium at ``viewport``: {(page, viewport): data} (see ``rendered``)."""
    width, height, mobile = VIEWPORTS[viewport]
    results = {}
    with Chromium(profile) as browser:
        for page in PAGES:
            url = (site.html / f"{page}.html").as_uri()
            browser.open(url, width=width, height=height, mobile=mobile)
            shots = [str(p) for p in browser.screenshot_slices(ARTIFACTS / page / f"{width}px")]
            layout_width = browser.evaluate("window.innerWidth")
            console, failed = list(browser.console), list(browser.failed_requests)
            if mobile:
                browser.open(url, width=width, height=height, mobile=False)
            data = browser.evaluate(MEASURE_JS)
            data.update(shots=shots, layout_width=layout_width, console=console, failed_requests=failed)
            if viewport == "desktop":
                data["sliders"] = browser.evaluate(SLIDERS_JS)
            results[page, viewport] = data
    return results


# -- static checks on the built files ------------------------------------------------------------

OUTSIDE = re.compile(r"^(https?:)?//", re.IGNORECASE)


def test_every_chapter_is_a_page(site):
    for name in PAGES:
        assert (site.html / f"{name}.html").exists(), f"{name} is in _toc.yml but was not built"


def test_site_needs_no_outside_host(site):
    """No page loads a script, stylesheet, font, image or frame from another host."""
    offenders = []
    for page in site.html.rglob("*.html"):
        soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
        for tag, attr in [("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"),
                          ("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src")]:
            for element in soup.find_all(tag):
                value = element.get(attr)
                if tag == "link" and not set(element.get("rel") or []) & {"stylesheet", "preload", "icon", "modulepreload", "manifest"}:
                    continue
                if value and OUTSIDE.match(value):
                    offenders.append(f"{page.name}: <{tag} {attr}={value}>")
        for script in soup.find_all("script", src=False):
            for url in re.findall(r"https?://[^\s\"'<>]+", script.string or ""):
                offenders.append(f"{page.name}: inline script refers to {url}")
    for css in site.html.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(errors="replace")):
            offenders.append(f"{css.relative_to(site.html)}: url({url})")
    assert not offenders, "the site refers to outside hosts:\n" + "\n".join(offenders)


def test_math_is_bundled(site):
    page = (site.html / "01_neurons.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (site.html / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_explorer_is_static_html_not_a_widget(site):
    page = (site.html / "01_neurons.html").read_text()
    assert "snnlab-explorer" in page
    assert "application/vnd.jupyter.widget-view+json" not in page
    assert "Loading widget" not in page


CHAPTERS = [p for p in PAGES if (build_book.BOOK / f"{p}.md").exists()
            and "kernelspec:" in (build_book.BOOK / f"{p}.md").read_text().split("---", 2)[1]]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_figure_drawn_is_output(site, name):
    """The figure audit: a cell that drew a figure has an image output for it (an Agg backend or
    a figure never displayed leaves none)."""
    problems = notebook_figures(site.executed[name])["problems"]
    assert not problems, "\n".join(problems)


# -- the browser -------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_every_figure_shows(site, rendered, name):
    """Every figure the chapter drew is an image on its page, and every image loads."""
    desktop = rendered[name, "desktop"]
    images = desktop["images"]
    broken = [i["what"] for i in images if not i["natural"]]
    assert not broken, f"{name}: images that did not load: {broken}"
    if name not in CHAPTERS:
        return
    expected = notebook_figures(site.executed[name])
    static = [i for i in images if i["output"] and not i["explorer"]]
    explorers = [i for i in images if i["explorer"]]
    assert len(static) >= expected["drawn"], (
        f"{name}: the page shows {len(static)} static figure(s), but the chapter's code drew {expected['drawn']}")
    assert len(static) == len(expected["images"]), (
        f"{name}: the page shows {len(static)} static figure(s), the executed notebook has "
        f"{len(expected['images'])} image output(s)")
    assert len(explorers) == expected["explorers"], (
        f"{name}: the page shows {len(explorers)} explorer(s), the notebook has {expected['explorers']}")


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_math_renders(rendered, name):
    """Every formula is typeset, and no TeX is left in the text a reader sees."""
    for viewport in VIEWPORTS:
        data = rendered[name, viewport]
        assert data["widgets"] == 0, f"{name}: a 'Loading widget...' box is on the page"
        assert not data["untypeset"], f"{name} ({viewport}): formulas not typeset by MathJax: {data['untypeset']}"
    text = rendered[name, "desktop"]["text"]
    raw = [m.group(0) for m in RAW_TEX.finditer(text)]
    assert not raw, f"{name}: raw TeX in the visible text: {sorted(set(raw))[:15]}"


RAW_TEX = re.compile(r"\$\$|\$[^$\s][^$\n]{0,200}?\$|\\[A-Za-z]{2,}|\\[()\[\]{}]")


@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("name", PAGES)
def test_nothing_overflows(rendered, name, viewport):
    """No element is wider than the text column, and nothing scrolls sideways except code (and
    wide tables on the phone)."""
    data = rendered[name, viewport]
    assert data["width"] == VIEWPORTS[viewport][0], f"the {viewport} viewport is {data['width']} px wide"
    assert not data["overflow"], (f"{name} at {data['width']} px: " + str(len(data["overflow"])) + " element(s) too wide:\n  "
                                  + "\n  ".join(data["overflow"][:25]))
    assert data["layout_width"] == data["width"], (
        f"{name}: on a {data['width']} px {viewport} the page is {data['layout_width']} px wide (the browser zooms out)")


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_figures_are_readable(site, rendered, name):
    """Every figure's smallest font, at the size the desktop page shows the figure, is at least
    9 pt: font (pt) x dpi / 96 x (shown width / natural width)."""
    images = rendered[name, "desktop"]["images"]
    static = [i for i in images if i["output"] and not i["explorer"]]
    fonts = notebook_figures(site.executed[name])["images"] if name in CHAPTERS else []
    small = []
    for i, image in enumerate(images):
        if image["explorer"]:
            font, dpi = image["minFont"], image["dpi"]
        elif image in static and static.index(image) < len(fonts):
            record = fonts[static.index(image)]
            font, dpi = record.get("min_font_pt"), record.get("dpi")
        else:
            continue
        if font is None or font != font:  # a figure without text
            continue
        assert dpi and dpi == dpi and image["natural"], f"{name}: no resolution known for {image['what']}"
        shown = font * dpi / 96 * image["shown"] / image["natural"]
        if shown < MIN_FONT_PT:
            small.append(f"{image['what']}: smallest font {font:g} pt at {dpi:g} dpi, shown at "
                         f"{image['shown']:.0f} of {image['natural']} px -> {shown:.1f} pt")
    assert not small, f"{name}: figures with text below {MIN_FONT_PT:g} pt as shown:\n  " + "\n  ".join(small)


PROGRESS_BAR = re.compile(r"\d+%\|")
RUN_TIME = re.compile(r"\bload average\b|\b(?:in|took)\s+\d+(?:\.\d+)?\s*s\b", re.IGNORECASE)


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_no_process_noise(rendered, name):
    """No frozen progress bar; run times and load averages are not printed among the results
    but kept in the 'How this page was computed' note, which every chapter ends with."""
    data = rendered[name, "desktop"]
    assert not PROGRESS_BAR.search(data["text"]), f"{name}: a progress bar is frozen on the page"
    noise = sorted({m.group(0) for m in RUN_TIME.finditer(data["outputText"])})
    assert not noise, f"{name}: run-time lines among the results: {noise}"
    if name in CHAPTERS:
        assert data["hasRecord"], f"{name} does not end with the 'How this page was computed' note"
        assert "wall-clock" in data["recordText"]


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_explorer_sliders_change_the_figure(rendered, name):
    """Move each slider of every explorer on the page: the figure (frame) must change."""
    sliders = rendered[name, "desktop"]["sliders"]
    dead = [s for s in sliders if not s["changed"]]
    assert not dead, f"{name}: sliders that did not change the figure: {dead}"


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly(rendered, name):
    """No JavaScript error, nothing fetched that failed (every outside host is unresolvable),
    and the full-page screenshots were taken."""
    for viewport in VIEWPORTS:
        data = rendered[name, viewport]
        assert not data["console"], f"{name} ({viewport}): JavaScript errors: {data['console']}"
        assert not data["failed_requests"], f"{name} ({viewport}): failed requests: {data['failed_requests']}"
        # every viewport-high slice shows something; the last one, cut at the page's end, may be
        # a few pixels of margin
        assert data["shots"] and all(Path(p).stat().st_size > 5_000 for p in data["shots"][:-1]), (
            f"{name} ({viewport}): blank screenshots: {[p for p in data['shots'][:-1] if Path(p).stat().st_size <= 5_000]}")


SYNTHETIC_PAGE = """<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{margin:0} article{width:600px;padding:0 20px} .cell_output pre{white-space:pre}</style></head>
<body><article class="bd-article">
<p>A formula MathJax never saw: $N(T)=\\sum_{i=1}^T (i+1)$, and a fraction: \\frac{1}{2}.</p>
<div class="cell_output"><pre>networks at initialisation:   0%|          | 0/32</pre>
<pre>chapter computed in 93 s; load average 2.1</pre></div>
<div id="wide" style="width:900px">a table nobody can read on a phone</div>
<div class="math" style="overflow-x:auto"><span style="display:inline-block;width:1200px">an equation</span></div>
<div class="cell_input"><div class="highlight"><pre>code may scroll: $x$ \\frac</pre></div></div>
<div class="cell_output"><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
  width="400" style="width:400px"></div>
</article></body></html>"""


@pytest.mark.browser
def test_the_browser_check_catches_what_it_should(tmp_path):
    """The measurements themselves can fail: raw TeX, a frozen progress bar, a run-time line, an
    element wider than the column and an equation that scrolls, on a page made to have them all
    (and the code cell, which may scroll and may hold TeX, is not held against it)."""
    if find_chromium() is None:
        pytest.skip("no Chromium")
    page = tmp_path / "bad.html"
    page.write_text(SYNTHETIC_PAGE)
    with Chromium(tmp_path / "profile") as browser:
        browser.open(page.as_uri(), width=1280, height=800)
        data = browser.evaluate(MEASURE_JS)
    raw = {m.group(0) for m in RAW_TEX.finditer(data["text"])}
    assert "\\frac" in raw and "$N(T)=\\sum_{i=1}^T (i+1)$" in raw
    assert "$x$" not in data["text"]  # code is excluded
    assert PROGRESS_BAR.search(data["text"])
    assert {m.group(0) for m in RUN_TIME.finditer(data["outputText"])} == {"in 93 s", "load average"}
    assert any('div "a table nobody' in o and "sticks out" in o for o in data["overflow"])
    assert any("div.math" in o and "scrolls sideways" in o for o in data["overflow"])
    assert not any("code may scroll" in o for o in data["overflow"])
    image = data["images"][0]
    assert image["output"] and image["shown"] == 400 and image["natural"] == 1


# -- teaching material: notebooks to download, goals, self-checks, the mechanism diagrams ---------

DIAGRAMS = {  # page -> ids of the figures drawn from snnlab.viz.diagrams (and chapter 1's training curves)
    "01_neurons": ["fig-unrolled-graph", "fig-hand-training"],
    "03_sew_resnet": ["fig-sew-blocks"],
    "04_mlf": ["fig-mlf-unit"],
    "06_sc_ttfs": ["fig-sc-ttfs-neuron"],
    "08_accelerator": ["fig-accelerator"],
}


def chapter_pages() -> list[str]:
    """The chapters and appendices: every notebook page."""
    return list(CHAPTERS)


def page_soup(site, name) -> BeautifulSoup:
    return BeautifulSoup((site.html / f"{name}.html").read_text(), "html.parser")


def test_every_chapter_offers_its_notebook_for_download(site):
    """The download menu of each notebook page links to the page as its executed .ipynb, a file
    inside the built site."""
    import nbformat

    for name in CHAPTERS:
        menu = page_soup(site, name).select(".dropdown-download-buttons a[href]")
        links = [a["href"] for a in menu if a["href"].endswith(".ipynb")]
        assert links == [f"_sources/{name}.ipynb"], f"{name}: notebook links in the download menu: {links}"
        notebook = nbformat.read(site.html / "_sources" / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{name}.ipynb is not the executed notebook"
        source = json.loads(site.executed[name].read_text())
        assert [c["source"] for c in notebook.cells] == ["".join(c["source"]) if isinstance(c["source"], list)
                                                         else c["source"] for c in source["cells"]], (
            f"{name}.ipynb is not the notebook the page was built from")


def test_chapters_open_with_goals_and_end_with_a_computed_self_check(site):
    intro = visible_text(page_soup(site, PAGES[0]))
    assert "Prerequisites." in intro and "After the book you can" in intro and "Reading order." in intro
    for name in chapter_pages():
        soup = page_soup(site, name)
        boxes = [a for a in soup.select("div.admonition")
                 if a.select_one(".admonition-title") and a.select_one(".admonition-title").get_text(strip=True) == "Before you start"]
        assert len(boxes) == 1, f"{name}: {len(boxes)} 'Before you start' boxes"
        assert soup.select_one("article h1").find_next_sibling() is boxes[0], f"{name}: the goals do not open the chapter"
        text = boxes[0].get_text(" ")
        assert "Prerequisites." in text and re.search(r"After this (chapter|appendix) you can", text), name
        section = soup.select_one("section#check-yourself")
        assert section is not None, f"{name} has no 'Check yourself' section"
        answers = section.select("div.admonition.dropdown")
        questions = [p for p in section.find_all("p", recursive=False) if re.match(r"^\d+\.", p.get_text(strip=True))]
        assert 3 <= len(questions) <= 5 and len(answers) == len(questions), (
            f"{name}: {len(questions)} questions, {len(answers)} folded answers")
        assert section.select(".pasted-text"), f"{name}: no computed (glued) number in the answers"
        assert "{glue" not in section.get_text(), f"{name}: a glue role was not rendered"


def visible_text(soup: BeautifulSoup) -> str:
    soup = BeautifulSoup(str(soup), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text(" ")


@pytest.mark.browser
@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_diagrams_are_drawn_on_their_pages(site, rendered, name):
    """Each diagram's figure is on its page in Chromium, its image loads, and it is shown at least
    300 px wide on the desktop and within the column on both widths (its fonts are checked by
    test_figures_are_readable, its width by test_nothing_overflows)."""
    for viewport in VIEWPORTS:
        shown = {i["figure"]: i for i in rendered[name, viewport]["images"] if i["figure"]}
        for fig_id in DIAGRAMS[name]:
            assert fig_id in shown, f"{name} ({viewport}): no image in figure #{fig_id}; figures seen: {sorted(shown)}"
            assert shown[fig_id]["natural"], f"{name} ({viewport}): the image of #{fig_id} did not load"
            if viewport == "desktop":
                assert shown[fig_id]["shown"] >= 300, f"{name}: #{fig_id} is shown only {shown[fig_id]['shown']:.0f} px wide"


@pytest.mark.browser
def test_notebook_download_works_offline(site, tmp_path):
    """The '.ipynb' entry of a chapter's download menu, clicked in Chromium from the built files with
    no network: the link carries the download attribute (a served site saves the file under its
    name; from file://, where Chromium ignores the attribute, the click opens the notebook itself,
    which the reader saves), and what it opens is the chapter's executed notebook."""
    if find_chromium() is None:
        pytest.skip("no Chromium")
    name = "01_neurons"
    with Chromium(tmp_path / "profile") as browser:
        browser.open((site.html / f"{name}.html").as_uri(), width=1280, height=900)
        link = browser.evaluate("(function () { var a = document.querySelector("
                                "'.dropdown-download-buttons a[href$=\\'.ipynb\\']');"
                                " if (!a) return null; var r = [a.href, a.getAttribute('download')];"
                                " a.click(); return r; })()")
        assert link and link[0].endswith(f"_sources/{name}.ipynb") and link[1] == f"{name}.ipynb", link
        for _ in range(100):  # the click navigates: evaluating mid-navigation fails, so try again
            try:
                if (browser.evaluate("location.href") == link[0]
                        and browser.evaluate("document.readyState") == "complete"):
                    break
            except CDPError:
                pass
            time.sleep(0.1)
        shown = json.loads(browser.evaluate("document.body.innerText"))
        assert browser.failed_requests == [], browser.failed_requests
    executed = json.loads(site.executed[name].read_text())
    assert len(shown["cells"]) == len(executed["cells"]) and shown["cells"], "the link opens another notebook"
