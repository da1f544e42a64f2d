"""Explorers (live widget + kernel-free HTML) and comparison tables."""

import base64
import json
import re

import pytest

from snnlab.viz import Table, explore
from snnlab.viz.explorer import MAX_FRAMES


def draw(fig, a, b):
    ax = fig.subplots()
    ax.plot([0, 1], [a, b])
    ax.set_title(f"{a}-{b}")


def embedded_data(html):
    match = re.search(r'<script type="application/json" class="snnlab-explorer-data">(.*?)</script>', html)
    return json.loads(match.group(1))


def test_static_html_embeds_one_png_frame_per_combination_in_order():
    explorer = explore(draw, {"a": [0.1, 0.2, 0.3], "b": [1, 2]}, initial={"a": 0.3, "b": 1})
    html = explorer.to_html()
    data = embedded_data(html)
    assert data["sizes"] == [3, 2]
    assert len(data["frames"]) == 6
    assert len(set(data["frames"])) == 6  # every combination draws a different figure
    for frame in data["frames"]:
        assert base64.b64decode(frame.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # row-major, last parameter fastest: the initial (a=0.3, b=1) is frame 2*2 + 0 = 4
    assert f'src="{data["frames"][4]}"' in html
    assert html.count('type="range"') == 2
    assert data["labels"] == [["0.1", "0.2", "0.3"], ["1", "2"]]
    assert "http" not in html.replace("data:image/png", "")


def test_single_valued_parameter_is_shown_without_a_dead_slider():
    def draw3(fig, a, b, c):
        fig.subplots().plot([0, 1, 2], [a, b, c])

    explorer = explore(draw3, {"a": [0.1, 0.2, 0.3], "b": [7], "c": [1, 2]}, initial={"a": 0.2, "c": 2})
    html = explorer.to_html()
    assert html.count('type="range"') == 2 and "<code>b</code> = 7" in html
    assert 'data-k="0"' in html and 'data-k="2"' in html and 'data-k="1"' not in html
    data = embedded_data(html)
    assert len(data["frames"]) == 6
    assert f'src="{data["frames"][1 * 2 + 1]}"' in html  # a=0.2 (index 1), c=2 (index 1)
    assert explorer.widget().children[0].children[1].disabled


def test_mimebundle_offers_live_widget_and_static_html():
    bundle = explore(draw, {"a": [0.1, 0.2], "b": [1]})._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "snnlab-explorer" in bundle["text/html"]


def test_live_widget_redraws_when_a_slider_moves():
    explorer = explore(draw, {"a": [0.1, 0.2], "b": [1, 2]})
    box = explorer.widget()
    sliders, image = box.children[0].children, box.children[1]
    before = image.value
    sliders[0].value = 0.1 if sliders[0].value == 0.2 else 0.2
    assert image.value != before
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "params, initial, match",
    [
        ({}, None, "non-empty"),
        ({"a": []}, None, "no values"),
        ({"a": [1, 1]}, None, "repeats"),
        ({"a": list(range(MAX_FRAMES + 1))}, None, "at most"),
        ({"a": [1, 2]}, {"b": 1}, "unknown parameters"),
        ({"a": [1, 2]}, {"a": 3}, "not one of its values"),
    ],
)
def test_bad_explorer_input_raises(params, initial, match):
    with pytest.raises(ValueError, match=match):
        explore(draw, params, initial=initial)


def test_draw_must_be_callable():
    with pytest.raises(TypeError, match="draw"):
        explore("not a function", {"a": [1]})


def test_table_renders_html_and_text():
    table = Table([{"x": 1.23456, "ok": True}, {"x": 2.0, "ok": False}], caption="scale: tiny")
    html = table._repr_html_()
    assert "<caption>scale: tiny</caption>" in html and "<td>1.235</td>" in html and "<td>yes</td>" in html
    assert table.column("ok") == [True, False]
    assert "x     | ok" in str(table)
    with pytest.raises(ValueError, match="columns"):
        Table([{"x": 1}, {"y": 2}])
    with pytest.raises(KeyError):
        table.column("z")


def test_table_transposed_swaps_rows_and_columns():
    table = Table([{"design": "A", "cycles": 10, "ok": True}, {"design": "B", "cycles": 2.5, "ok": False}],
                  caption="c")
    flipped = table.transposed("quantity")
    assert flipped.columns == ["quantity", "A", "B"]
    assert flipped.rows == [{"quantity": "cycles", "A": 10, "B": 2.5}, {"quantity": "ok", "A": True, "B": False}]
    assert flipped.caption == "c"
    with pytest.raises(ValueError, match="repeats"):
        Table([{"k": 1, "v": 2}, {"k": 1, "v": 3}]).transposed()


def test_table_html_scrolls_in_its_own_box():
    html = Table([{"x": 1}])._repr_html_()
    assert html.startswith('<div class="snnlab-table-wrap" style="max-width:100%;overflow-x:auto">')
