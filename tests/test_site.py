"""The built book site: it builds, needs no outside host, and renders in a real browser.

The site is built once per test session in quick mode (the same Jupyter Book build `make book`
runs, with smaller experiments). Headless Chromium then loads pages from the built files with
every outside host unresolvable, and we check what a reader would see: typeset math, no
"Loading widget..." boxes, explorers whose sliders change the figure. Screenshots are kept in
``test-artifacts/``.

Chromium is installed by ``make test`` when missing and running as root. Without it the browser
checks are skipped with the reason, except in CI (``CI=true``), where they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
sys.path.insert(0, str(ROOT / "scripts"))
import build_book  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import toc_files  # noqa: E402

# Pages the browser checks: the introduction, chapter 1 and every later chapter.
BROWSER_PAGES = toc_files()
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # No outside host resolves: anything the page needed from the network would fail to load.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The book built in quick mode; returns the folder with index.html.

    When nbmake has just executed every chapter (the whole suite runs the notebooks first), the
    site is built from those executed notebooks; otherwise the build executes the chapters.
    """
    from conftest import executed_chapters

    html = build_book.build(tmp_path_factory.mktemp("book"), quick=True, executed=executed_chapters())
    assert (html / "index.html").exists()
    return html


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    reason = (
        "no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "). `make test` installs "
        "Debian's chromium when run as root; otherwise install it yourself (sudo apt-get install chromium)."
    )
    if os.environ.get("CI"):
        pytest.fail("the browser check must run in CI, but " + reason)
    pytest.skip(reason)


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def dump_dom(url: str, profile: Path) -> BeautifulSoup:
    result = run_chromium(["--dump-dom", url], profile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "<html" in result.stdout, f"Chromium returned no page for {url}: {result.stderr[-2000:]}"
    return BeautifulSoup(result.stdout, "html.parser")


def visible_text(soup: BeautifulSoup) -> str:
    soup = BeautifulSoup(str(soup), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text(" ")


# -- static checks on the built files ----------------------------------------------------------

OUTSIDE = re.compile(r"^(https?:)?//", re.IGNORECASE)


def test_every_chapter_is_a_page(site):
    for name in toc_files():
        assert (site / f"{name}.html").exists(), f"{name} is in _toc.yml but was not built"


def test_site_needs_no_outside_host(site):
    """No page loads a script, stylesheet, font, image or frame from another host."""
    offenders = []
    for page in site.rglob("*.html"):
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
    for css in site.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(errors="replace")):
            offenders.append(f"{css.relative_to(site)}: url({url})")
    assert not offenders, "the site refers to outside hosts:\n" + "\n".join(offenders)


def test_math_is_bundled(site):
    page = (site / "01_neurons.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_explorer_is_static_html_not_a_widget(site):
    page = (site / "01_neurons.html").read_text()
    assert "snnlab-explorer" in page
    assert "application/vnd.jupyter.widget-view+json" not in page
    assert "Loading widget" not in page


# -- the browser ---------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("name", BROWSER_PAGES)
def test_page_renders_offline_in_chromium(site, name, tmp_path):
    url = (site / f"{name}.html").as_uri()
    soup = dump_dom(url, tmp_path / "profile")
    text = visible_text(soup)
    assert "Loading widget" not in text
    maths = soup.select(".math")
    assert maths, f"{name} has no math"
    untypeset = [m for m in maths if not m.find("mjx-container")]
    assert not untypeset, f"{len(untypeset)} of {len(maths)} formulas were not typeset by MathJax on {name}"
    assert "$$" not in text and "\\[" not in text, "raw TeX left on the page"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    result = run_chromium(["--window-size=1280,2400", f"--screenshot={shot}", url], tmp_path / "profile2")
    assert result.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, result.stderr[-2000:]


@pytest.mark.browser
@pytest.mark.parametrize("name", BROWSER_PAGES)
def test_explorer_sliders_change_the_figure_in_chromium(site, name, tmp_path):
    """Move each slider of every explorer on the page and check the figure (frame) changes."""
    page = (site / f"{name}.html").read_text()
    explorers = page.count('class="snnlab-explorer"')
    if not explorers:
        return  # nothing to move on this page
    probe = """
<script>
window.addEventListener('load', function () {
  var results = [];
  document.querySelectorAll('.snnlab-explorer').forEach(function (root) {
    var img = root.querySelector('img');
    root.querySelectorAll('input[type=range]').forEach(function (input) {
      var before = img.src;
      input.value = (parseInt(input.value, 10) + 1) % (parseInt(input.max, 10) + 1);
      input.dispatchEvent(new Event('input'));
      results.push(before !== img.src ? 'changed' : 'same');
    });
  });
  document.body.setAttribute('data-probe', results.join(','));
});
</script>
"""
    probed = site / f"_probe_{name}.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    try:
        soup = dump_dom(probed.as_uri(), tmp_path / "profile")
    finally:
        probed.unlink()
    outcome = soup.body.get("data-probe", "")
    assert outcome, f"no explorer slider found on {name}"
    assert set(outcome.split(",")) == {"changed"}, f"sliders that did not change the figure: {outcome}"
