"""An AU-slider editor for the notebooks (04_results): 17 sliders, one per AU, set the relative AUs v_rel
of an edit and the edited face updates as they move. Widgets do not run in the built book, so
:func:`slider_figure` draws the same editor, frozen at a few slider settings, as a static figure."""
from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from ... import labels as L
from ...viz import to_numpy_image

__all__ = ["au_slider_editor", "slider_figure", "v_rel_from"]


def v_rel_from(settings: dict[str, float]) -> torch.Tensor:
    """A (1, 17) v_rel from ``{"AU12": 0.6, ...}`` (AUs not named stay 0: left alone)."""
    unknown = set(settings) - set(L.AUS)
    if unknown:
        raise KeyError(f"unknown AUs {sorted(unknown)}; choose from {L.AUS}")
    v = torch.zeros(1, len(L.AUS))
    for au, value in settings.items():
        v[0, L.AUS.index(au)] = float(value)
    return v


def au_slider_editor(edit: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, *, low: float = -1.0,
                     high: float = 1.0, step: float = 0.05, size: float = 3.0):
    """An ipywidgets editor: ``edit(v_rel)`` (v_rel of shape (1, 17)) returns the edited image (1, 3, S, S);
    ``image`` (3, S, S) is the input. Returns the widget (display it as a cell's last expression)."""
    import ipywidgets as W
    sliders = [W.FloatSlider(value=0.0, min=low, max=high, step=step, description=au,
                             tooltip=L.AU_NAMES.get(au, au), continuous_update=False,
                             layout=W.Layout(width="220px")) for au in L.AUS]
    reset = W.Button(description="reset")
    out = W.Output()

    def redraw(*_):
        v = torch.tensor([[s.value for s in sliders]])
        with torch.no_grad():
            edited = edit(v)[0]
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
            for ax, img, title in zip(axes, (image, edited), ("input", "edit")):
                ax.imshow(to_numpy_image(img))
                ax.set_title(title, fontsize=9)
                ax.axis("off")
            plt.show()

    def zero(_):
        for s in sliders:
            s.value = 0.0

    for s in sliders:
        s.observe(redraw, names="value")
    reset.on_click(zero)
    redraw()
    grid = W.GridBox(sliders, layout=W.Layout(grid_template_columns="repeat(3, 230px)"))
    return W.HBox([W.VBox([grid, reset]), out])


def slider_figure(edit: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  settings: Sequence[dict[str, float]], *, size: float = 1.6):
    """The slider editor frozen at ``settings`` (each ``{"AU12": 0.6, ...}``): one column per setting, the
    edit above a bar chart of its 17 slider positions. Returns the figure."""
    n = len(settings) + 1
    fig, axes = plt.subplots(2, n, figsize=(size * n, 2.3 * size), gridspec_kw={"height_ratios": [1.2, 1]})
    axes[0, 0].imshow(to_numpy_image(image))
    axes[0, 0].set_title("input (v_rel = 0)", fontsize=8)
    axes[1, 0].axis("off")
    for j, s in enumerate(settings, start=1):
        v = v_rel_from(s)
        with torch.no_grad():
            axes[0, j].imshow(to_numpy_image(edit(v)[0]))
        axes[0, j].set_title(", ".join(f"{a} {x:+.1f}" for a, x in s.items()), fontsize=7)
        axes[1, j].barh(range(len(L.AUS)), v[0].numpy(), color=["tab:red" if x else "lightgrey" for x in v[0]])
        axes[1, j].set_xlim(-1, 1)
        axes[1, j].set_yticks(range(len(L.AUS)), L.AUS if j == 1 else [], fontsize=5)
        axes[1, j].tick_params(axis="x", labelsize=6)
        axes[1, j].invert_yaxis()
    for ax in axes[0]:
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    return fig
