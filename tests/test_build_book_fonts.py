"""The book build's guard against a matplotlib font cache that lacks matplotlib's own fonts."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import build_book  # noqa: E402


def _cache(folder: Path) -> Path:
    (cache,) = folder.glob("fontlist-v*.json")
    return cache


def test_a_font_cache_without_matplotlibs_fonts_is_removed_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    assert build_book.check_font_cache()                      # a fresh cache: written here, complete
    cache = _cache(tmp_path)
    written = cache.stat().st_mtime_ns
    assert build_book.check_font_cache() and cache.stat().st_mtime_ns == written   # a good cache stays
    # what broke a build here: a list of only the system fonts, as a matplotlib whose own font files
    # were not there (an environment half-installed or half-deleted) writes it; its own fonts are
    # stored relative to its data folder, the system's with absolute paths
    listed = json.loads(cache.read_text())
    listed["ttflist"] = [f for f in listed["ttflist"] if Path(f["fname"]).is_absolute()]
    assert not any(f["name"] == "STIXGeneral" for f in listed["ttflist"])
    cache.write_text(json.dumps(listed))
    assert build_book.check_font_cache() is False             # found stale, removed
    rebuilt = json.loads(_cache(tmp_path).read_text())
    assert any(f["name"] == "STIXGeneral" for f in rebuilt["ttflist"])   # written again, complete

