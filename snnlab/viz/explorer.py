"""Slider explorers that work live in JupyterLab and without a kernel in the static book.

``explore(draw, params)`` returns an :class:`Explorer`. Displayed in a notebook it offers two
representations of the same figure:

* ``application/vnd.jupyter.widget-view+json``: ipywidgets sliders, one per parameter, that
  redraw the figure live (JupyterLab picks this one);
* ``text/html``: every combination of the parameter values drawn in advance and embedded as PNG
  frames, with plain HTML range inputs and a few lines of inline JavaScript that swap the frame
  (the static site keeps this one; it needs no kernel, no widget manager and no network).

``draw(fig, **values)`` draws into a fresh :class:`matplotlib.figure.Figure`; it is called once
per frame and on every slider move, so it must not touch global pyplot state.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence

from matplotlib.figure import Figure

from snnlab.viz.audit import embedded_figure, min_font_size

__all__ = ["Explorer", "explore", "render_png", "render_frame", "MAX_FRAMES"]

MAX_FRAMES = 100
"""Most frames a static explorer embeds (each is a PNG inside the page)."""


def render_frame(draw: Callable[..., None], values: Mapping[str, float], figsize, dpi: int) -> tuple[bytes, float | None]:
    """Draw one frame with ``draw(fig, **values)``; return it as PNG bytes and the smallest
    font size on it (points; ``None`` without text)."""
    with embedded_figure():  # a frame reaches the page inside the explorer, not as a figure output
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    draw(fig, **values)
    smallest = min_font_size(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue(), smallest


def render_png(draw: Callable[..., None], values: Mapping[str, float], figsize, dpi: int) -> bytes:
    """Draw one frame with ``draw(fig, **values)`` and return it as PNG bytes."""
    return render_frame(draw, values, figsize, dpi)[0]


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Explorer:
    """A figure with sliders; see the module docstring for how it displays."""

    def __init__(
        self,
        draw: Callable[..., None],
        params: Mapping[str, Sequence],
        *,
        initial: Mapping[str, object] | None = None,
        figsize: tuple[float, float] = (7.0, 3.2),
        dpi: int = 100,
        title: str | None = None,
    ) -> None:
        if not callable(draw):
            raise TypeError(f"draw must be a function draw(fig, **values), got {type(draw).__name__}.")
        if not isinstance(params, Mapping) or not params:
            raise ValueError("params must be a non-empty mapping {name: [values, ...]}.")
        self.params: dict[str, list] = {}
        for name, values in params.items():
            values = list(values)
            if not values:
                raise ValueError(f"parameter {name!r} has no values; give at least one.")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"parameter {name!r} repeats a value: {values}.")
            self.params[name] = values
        n_frames = 1
        for values in self.params.values():
            n_frames *= len(values)
        if n_frames > MAX_FRAMES:
            raise ValueError(
                f"{n_frames} parameter combinations would be embedded as frames (at most {MAX_FRAMES}); "
                f"give fewer values per slider."
            )
        self.n_frames = n_frames
        initial = dict(initial or {})
        unknown = set(initial) - set(self.params)
        if unknown:
            raise ValueError(f"initial names unknown parameters {sorted(unknown)}; known: {list(self.params)}.")
        self.initial: dict[str, object] = {}
        for name, values in self.params.items():
            value = initial.get(name, values[len(values) // 2])
            if value not in values:
                raise ValueError(f"initial value {value!r} of {name!r} is not one of its values {values}.")
            self.initial[name] = value
        self.draw = draw
        self.figsize = figsize
        self.dpi = dpi
        self.title = title
        self._widget = None

    # -- static (kernel-free) representation -------------------------------------------------
    def frames(self) -> list[bytes]:
        """Every frame as PNG, in row-major order over ``params`` (last parameter fastest)."""
        return [png for png, _ in self._rendered()]

    def _rendered(self) -> list[tuple[bytes, float | None]]:
        names = list(self.params)
        return [
            render_frame(self.draw, dict(zip(names, combo)), self.figsize, self.dpi)
            for combo in itertools.product(*self.params.values())
        ]

    def to_html(self) -> str:
        """Self-contained HTML: range inputs + inline script swapping precomputed frames."""
        uid = "snnlab-explorer-" + uuid.uuid4().hex[:10]
        names = list(self.params)
        rendered = self._rendered()
        frames = ["data:image/png;base64," + base64.b64encode(png).decode("ascii") for png, _ in rendered]
        fonts = [size for _, size in rendered if size is not None]
        min_font = f' data-min-font-pt="{min(fonts):g}"' if fonts else ""
        sizes = [len(self.params[n]) for n in names]
        start = [self.params[n].index(self.initial[n]) for n in names]
        flat = 0
        for index, size in zip(start, sizes):
            flat = flat * size + index
        labels = [[_format(v) for v in self.params[n]] for n in names]
        controls = []
        for k, name in enumerate(names):
            if sizes[k] == 1:  # a fixed value: shown, but no control that does nothing
                controls.append(
                    f'<span class="snnlab-explorer-fixed"><code>{html.escape(name)}</code> = '
                    f"{html.escape(labels[k][0])}</span>"
                )
                continue
            controls.append(
                f'<label class="snnlab-explorer-control" style="display:inline-flex;align-items:center;gap:0.4em">'
                f"<code>{html.escape(name)}</code>"
                f'<input type="range" min="0" max="{sizes[k] - 1}" step="1" value="{start[k]}" '
                f'data-k="{k}" aria-label="{html.escape(name)}">'
                f'<span class="snnlab-explorer-value">{html.escape(labels[k][start[k]])}</span></label>'
            )
        title = f"<div><strong>{html.escape(self.title)}</strong></div>" if self.title else ""
        data = json.dumps({"frames": frames, "sizes": sizes, "labels": labels})
        return (
            f'<div class="snnlab-explorer" id="{uid}">{title}'
            f'<div class="snnlab-explorer-controls" style="display:flex;flex-wrap:wrap;gap:0.3em 1.5em;'
            f'align-items:center">{"".join(controls)}</div>'
            f'<img src="{frames[flat]}" class="snnlab-explorer-frame" style="max-width:100%;height:auto" data-dpi="{self.dpi:g}"{min_font} '
            f'alt="{html.escape(self.title or "interactive figure")}">'
            f'<script type="application/json" class="snnlab-explorer-data">{data}</script>'
            "<script>(function(){"
            f'var root=document.getElementById("{uid}");'
            'var d=JSON.parse(root.querySelector(".snnlab-explorer-data").textContent);'
            'var inputs=root.querySelectorAll("input[type=range]");'
            'var spans=root.querySelectorAll(".snnlab-explorer-value");var img=root.querySelector("img");'
            # parameters with one value have no input; they add nothing to the row-major index
            "function update(){var i=0;for(var j=0;j<inputs.length;j++){"
            "var k=parseInt(inputs[j].dataset.k,10);var v=parseInt(inputs[j].value,10);"
            "i=i*d.sizes[k]+v;spans[j].textContent=d.labels[k][v];}"
            "img.src=d.frames[i];}"
            'for(var k=0;k<inputs.length;k++){inputs[k].addEventListener("input",update);}'
            "})();</script></div>"
        )

    # -- live representation ---------------------------------------------------------------
    def widget(self):
        """The live ipywidgets version (sliders + an image redrawn on every move)."""
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        sliders = {
            name: widgets.SelectionSlider(
                options=[(_format(v), v) for v in values],
                value=self.initial[name],
                description=name,
                continuous_update=True,
                style={"description_width": "initial"},
                layout=widgets.Layout(width="24em"),
                disabled=len(values) == 1,
            )
            for name, values in self.params.items()
        }
        image = widgets.Image(value=self._png(self.initial), format="png")

        def redraw(_change=None) -> None:
            image.value = self._png({name: s.value for name, s in sliders.items()})

        for slider in sliders.values():
            slider.observe(redraw, names="value")
        children = [widgets.HBox(list(sliders.values())), image]
        if self.title:
            children.insert(0, widgets.HTML(f"<strong>{html.escape(self.title)}</strong>"))
        self._widget = widgets.VBox(children)
        return self._widget

    def _png(self, values: Mapping[str, object]) -> bytes:
        return render_png(self.draw, values, self.figsize, self.dpi)

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = dict(self.widget()._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.to_html()
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}: {len(v)} values" for n, v in self.params.items())
        return f"Explorer({sizes}; {self.n_frames} frames)"


def explore(draw: Callable[..., None], params: Mapping[str, Sequence], **options) -> Explorer:
    """A figure the reader explores with one slider per parameter.

    Args:
        draw: ``draw(fig, **values)`` draws into a fresh matplotlib Figure.
        params: ``{name: [value, ...]}``; every combination becomes a precomputed frame for the
            static site (at most :data:`MAX_FRAMES`).
        **options: ``initial`` (starting value per parameter; default the middle value),
            ``figsize``, ``dpi`` and ``title``, as for :class:`Explorer`.
    """
    return Explorer(draw, params, **options)
