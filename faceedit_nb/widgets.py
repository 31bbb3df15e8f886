"""Interactive editors for the chapters (ipywidgets), each with a static figure of the same content.

Four kinds, one widget function each:

* :func:`au_sliders`: one slider per AU. Absolute target AUs (GANimation: the sliders start at the face's
  own AUs) or relative ones (Ling et al.: the sliders are v_rel = target - source and start at 0).
* :func:`expression_interpolation`: Eq. 2 of Ling et al., a slider α between two expressions' AU vectors:
  the target is ``v_1 + α (v_2 - v_1)``, so a relative editor is fed ``v_inter = v_1 + α (v_2 - v_1) - v_src``.
* :func:`attribute_toggles`: one toggle per attribute (StarGAN, AttGAN, SeCGAN); each flips its attribute
  of the source labels, and nothing else.
* :func:`deformation_grid`: DefGAN's deformation grid drawn over the warped face as AU sliders move.

Each kind has three layers. A **state function** (:func:`au_edit`, :func:`interpolation_edit`,
:func:`toggle_edit`, :func:`deformation_edit`) turns the controls' values into an :class:`Edit`: the target
the editor received and the image it returned; it needs no front end, so tests call it directly. One
drawing function (:func:`draw_edits`) draws a list of edits beside the input. The widget calls both on every
change and shows the drawing as a PNG; the **static figure** (:func:`au_slider_figure`,
:func:`interpolation_figure`, :func:`toggle_figure`, :func:`deformation_figure`) calls the same two at a few
fixed control values, one column per value, for the built book, where widgets do not run.

An *editor* is ``(images, source_labels, target_labels) -> images`` (images in [-1, 1], see
:mod:`faceedit_nb.metrics.editors`); DefGAN's widget takes its generator instead, whose output holds the grid.
"""
from __future__ import annotations

import io
import textwrap
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import labels as L
from .viz import to_numpy_image

__all__ = ["Edit", "EditorWidget", "au_edit", "interpolation_edit", "toggle_edit", "deformation_edit", "draw_edits",
           "au_sliders", "expression_interpolation", "attribute_toggles", "deformation_grid", "au_slider_figure",
           "interpolation_figure", "toggle_figure", "deformation_figure", "DEFGAN_AUS"]

DEFGAN_AUS = ("AU04", "AU05", "AU14", "AU26")  # the AUs DefGAN's Sec. 4.3 moves one at a time (Fig. 6 / 11)


@dataclass
class Edit:
    """One state of an editor widget: ``source`` and ``target`` labels (1 x K) as the editor received them,
    the edited ``image`` (3 x S x S, [-1, 1]), a short ``title`` and, for DefGAN, ``extras`` (``deformed``:
    the warped face, ``offsets``: H x W x 2 pixel offsets (dx, dy) of its grid)."""
    source: torch.Tensor
    target: torch.Tensor
    image: torch.Tensor
    title: str
    extras: dict = field(default_factory=dict)


# --- inputs -----------------------------------------------------------------------------------------------
def _image(image: torch.Tensor) -> torch.Tensor:
    """One face as 1 x 3 x S x S."""
    x = torch.as_tensor(image).float()
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"the widgets edit one face: pass an image of shape (3, S, S) or (1, 3, S, S); got "
                         f"{tuple(torch.as_tensor(image).shape)}")
    return x


def _labels(labels, k: int, what: str) -> torch.Tensor:
    """One label vector as 1 x k floats."""
    v = torch.as_tensor(labels).detach().float().cpu().reshape(1, -1)
    if v.shape[1] != k:
        raise ValueError(f"{what} must hold {k} values (one per {'AU' if k == len(L.AUS) else 'label'}); got "
                         f"{v.shape[1]}")
    return v


def _index(name: str, names: Sequence[str], what: str) -> int:
    if name not in names:
        raise KeyError(f"unknown {what} {name!r}; choose from {', '.join(names)}")
    return list(names).index(name)


def _binary(labels, names: Sequence[str]) -> torch.Tensor:
    """0/1 attributes as 1 x len(names) floats."""
    src = _labels(labels, len(names), "source_labels")
    if not bool(((src == 0) | (src == 1)).all()):
        raise ValueError(f"the toggles flip 0/1 attributes; source_labels hold {src[0].tolist()}: pass the "
                         "face's binary attributes")
    return src


def _expression_aus(expression) -> tuple[str, torch.Tensor]:
    """A name and a 1 x 17 AU vector: an expression's prototype (by name) or a given vector."""
    if isinstance(expression, str):
        return expression, L.PROTOTYPES[_index(expression, L.EXPRESSIONS, "expression")][None].clone()
    return "v", _labels(expression, len(L.AUS), "an expression's AU vector")


@torch.no_grad()
def _run(editor: Callable, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if getattr(editor, "wants_indices", False):
        raise TypeError(f"{editor!r} needs data-set indices (the ground-truth editor); a widget edits a single "
                        "image: pass a model's editor")
    out = editor(x, source.to(x.dtype), target.to(x.dtype))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise ValueError(f"the editor must return an image batch of shape {tuple(x.shape)}; got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out[0].float()


# --- state functions: controls -> Edit (no front end) -----------------------------------------------------
def au_edit(editor: Callable, image: torch.Tensor, source_aus, values: Mapping[str, float], *,
            relative: bool = False) -> Edit:
    """The edit at slider positions ``values`` (``{"AU12": 0.8, ...}``; AUs not named keep the source's).
    Absolute (``relative=False``, GANimation): a slider is the target AU itself. Relative (Ling et al.): a
    slider is v_rel's entry, the target is ``source + v_rel`` and a relative editor is fed v_rel back."""
    x, src = _image(image), _labels(source_aus, len(L.AUS), "source_aus")
    target = src.clone()
    for au, v in values.items():
        k = _index(au, L.AUS, "AU")
        target[0, k] = src[0, k] + float(v) if relative else float(v)
    moved = [(au, float(target[0, k] - src[0, k]) if relative else float(target[0, k]))
             for k, au in enumerate(L.AUS) if target[0, k] != src[0, k]]
    title = ", ".join(f"{au} {v:+.2f}" if relative else f"{au} = {v:.2f}" for au, v in moved) or "no change"
    return Edit(src, target, _run(editor, x, src, target), title)


def interpolation_edit(editor: Callable, image: torch.Tensor, source_aus, start, end, alpha: float) -> Edit:
    """Eq. 2 of Ling et al.: the target AUs ``v_1 + α (v_2 - v_1)`` between expressions ``start`` (v_1, at
    α = 0) and ``end`` (v_2, at α = 1), each an expression name (its prototype AUs) or a 17-vector. A
    relative editor is fed ``target - source = v_inter`` (kept in ``extras["v_inter"]``). ``torch.lerp``
    gives both endpoints exactly."""
    x, src = _image(image), _labels(source_aus, len(L.AUS), "source_aus")
    (n1, v_1), (n2, v_2) = _expression_aus(start), _expression_aus(end)
    target = torch.lerp(v_1, v_2, float(alpha))
    return Edit(src, target, _run(editor, x, src, target), f"{n1} → {n2}, α = {alpha:.2f}",
                {"v_inter": target - src})


def toggle_edit(editor: Callable, image: torch.Tensor, source_labels, flipped: Iterable[str], *,
                names: Sequence[str] = L.ATTRIBUTES) -> Edit:
    """The edit with the attributes ``flipped`` (names from ``names``) inverted in the source labels (0/1)
    and every other attribute kept: one toggle, one attribute (no conflict rule clears another one)."""
    x, src = _image(image), _binary(source_labels, names)
    target, title = src.clone(), []
    for name in flipped:
        k = _index(name, names, "attribute")
        target[0, k] = 1 - src[0, k]
        title.append(("+" if target[0, k] else "−") + name.replace("_", " "))
    return Edit(src, target, _run(editor, x, src, target), ", ".join(title) or "no change")


def _pixel_offsets(grid: torch.Tensor) -> torch.Tensor:
    """A sampling grid (1 x H x W x 2, grid_sample's normalised (x, y), pixel centres) as each pixel's offset
    in pixels (H x W x 2, (dx, dy)): what :func:`faceedit_nb.papers.defgan.model.grid_to_pixels` computes."""
    size = grid.shape[1]
    coords = (torch.arange(size, dtype=grid.dtype) * 2 + 1) / size - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return ((grid[0] - torch.stack([xx, yy], dim=-1)) * size / 2).float()


@torch.no_grad()
def deformation_edit(generator: Callable, image: torch.Tensor, source_aus, values: Mapping[str, float]) -> Edit:
    """DefGAN's edit at absolute AU slider positions ``values`` (others kept): ``generator(x, source,
    target)`` must return DefGAN's dict (:class:`faceedit_nb.papers.defgan.model.DefGANGenerator`) with the
    ``grid``, the warped face ``deformed`` and the final ``output``; ``extras`` gets the warped face and the
    grid's pixel offsets."""
    x, src = _image(image), _labels(source_aus, len(L.AUS), "source_aus")
    target = src.clone()
    for au, v in values.items():
        target[0, _index(au, L.AUS, "AU")] = float(v)
    out = generator(x, src, target)
    if not isinstance(out, Mapping) or not {"grid", "deformed", "output"} <= set(out):
        raise TypeError("the deformation widget needs DefGAN's generator (its output holds 'grid', 'deformed' "
                        "and 'output'), e.g. faceedit_nb.papers.defgan.trained_generator(trained)")
    title = ", ".join(f"{au} = {float(target[0, k]):.2f}" for k, au in enumerate(L.AUS)
                      if target[0, k] != src[0, k]) or "no change"
    return Edit(src, target, out["output"][0].float(), title,
                {"deformed": out["deformed"][0].float(), "offsets": _pixel_offsets(out["grid"].float())})


# --- drawing: shared by the widgets and the static figures ------------------------------------------------
def _grid_lines(ax, offsets: torch.Tensor, *, step: int, exaggerate: float, color: str = "yellow", lw: float = 0.6):
    """Every ``step``-th row and column of pixels drawn at the point it samples, ``p + exaggerate *
    offset(p)`` (as :func:`faceedit_nb.papers.defgan.evaluation.plot_warped_grid`)."""
    off = offsets.numpy() * exaggerate
    h, w = off.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    px, py = xs.numpy() + off[..., 0], ys.numpy() + off[..., 1]
    for r in range(step // 2, h, step):
        ax.plot(px[r], py[r], color=color, lw=lw, alpha=0.85)
    for c in range(step // 2, w, step):
        ax.plot(px[:, c], py[:, c], color=color, lw=lw, alpha=0.85)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _change(edit: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """|edit - input| averaged over the colours, on the 0-1 scale (H x W)."""
    return (edit - image).abs().mean(0) / 2


def draw_edits(image: torch.Tensor, edits: Sequence[Edit], *, size: float = 1.4, change_scale: float = 0.25,
               grid_step: int = 0, exaggerate: float = 3.0, pyplot: bool = True) -> Figure:
    """The input, then one column per edit: the edit (its title above) and ``|edit - input|`` (magma, 0 to
    ``change_scale`` on the 0-1 scale). For DefGAN's edits (``extras`` with ``offsets``) a first row shows
    the warped face with its grid (every ``grid_step``-th pixel line, default an eighth of the side; offsets
    drawn ``exaggerate`` times longer), the input column the undeformed grid. ``pyplot=False`` makes a figure
    outside pyplot (the widgets' PNGs: nothing for Jupyter to show twice)."""
    x = _image(image)[0]
    grid = bool(edits) and all("offsets" in e.extras for e in edits)
    rows = ["warp I*_y and grid", "final I_y", "|I_y − input|"] if grid else ["edit", "|edit − input|"]
    shape = (len(rows), 1 + len(edits))
    figsize = (size * shape[1] + 0.4, size * shape[0] + 0.3)
    if pyplot:
        fig, axes = plt.subplots(*shape, figsize=figsize, squeeze=False)
    else:
        fig = Figure(figsize=figsize)
        axes = fig.subplots(*shape, squeeze=False)
    step = grid_step or max(x.shape[-1] // 8, 2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0, 0].imshow(to_numpy_image(x), interpolation="nearest")
    axes[0, 0].set_title("input", fontsize=8)
    if grid:
        _grid_lines(axes[0, 0], torch.zeros(*x.shape[-2:], 2), step=step, exaggerate=exaggerate)
        axes[1, 0].imshow(to_numpy_image(x), interpolation="nearest")
    for j, e in enumerate(edits, start=1):
        col = axes[:, j]
        if grid:
            col[0].imshow(to_numpy_image(e.extras["deformed"]), interpolation="nearest")
            _grid_lines(col[0], e.extras["offsets"], step=step, exaggerate=exaggerate)
            col = col[1:]
        col[0].imshow(to_numpy_image(e.image), interpolation="nearest")
        col[1].imshow(_change(e.image, x).numpy(), cmap="magma", vmin=0, vmax=change_scale, interpolation="nearest")
        width = max(8, int(11 * size))  # characters per title line at this panel size
        axes[0, j].set_title("\n".join(textwrap.fill(part, width) for part in e.title.split(", ")), fontsize=7)
    for ax, label in zip(axes[:, 0], rows):
        ax.set_ylabel(label, fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


# --- the widget -------------------------------------------------------------------------------------------
class EditorWidget:
    """Controls, the drawing of the current :class:`Edit` (a PNG) and a status line. ``state()`` reads the
    controls and returns the edit, ``draw(edit)`` its figure; both run on every change of a control's value,
    and on :meth:`update`. ``last`` is the current edit, ``seconds`` what the last update took (model and
    drawing). Display it as a cell's last expression (or with ``IPython.display.display``)."""

    def __init__(self, controls: Mapping, state: Callable[[], Edit], draw: Callable[[Edit], Figure], *,
                 columns: int = 3, width: str = "215px"):
        import ipywidgets as W
        self.controls, self._state, self._draw = dict(controls), state, draw
        self._initial = {k: c.value for k, c in self.controls.items()}
        self._paused = False
        self.view, self.status = W.Image(format="png"), W.Label()
        reset = W.Button(description="reset", tooltip="every control back to where it started")
        reset.on_click(lambda _: self.reset())
        for c in self.controls.values():
            c.layout.width = width
            c.observe(self.update, names="value")
        grid = W.GridBox(list(self.controls.values()),
                         layout=W.Layout(grid_template_columns=f"repeat({columns}, {width})"))
        self.widget = W.HBox([W.VBox([grid, reset, self.status]), self.view])
        self.last: Edit | None = None
        self.seconds = float("nan")
        self.update()

    def update(self, *_) -> Edit:
        """Re-run the state function and redraw (what a control's change does); returns the edit."""
        if self._paused:
            return self.last
        start = time.perf_counter()
        try:
            edit = self._state()
            fig = self._draw(edit)
        except Exception as exc:  # a callback's error reaches only Jupyter's log: show it beside the controls too
            self.status.value = f"error: {exc}"
            raise
        self.view.value = _png(fig)
        self.last, self.seconds = edit, time.perf_counter() - start
        self.status.value = f"{edit.title} ({self.seconds * 1000:.0f} ms)"
        return edit

    def reset(self) -> Edit:
        """Every control back to its first value, then one update."""
        self._paused = True
        try:
            for k, c in self.controls.items():
                c.value = self._initial[k]
        finally:
            self._paused = False
        return self.update()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _sliders(names: Sequence[str], values: Sequence[float], low: float, high: float, step: float, what: str):
    """FloatSliders at ``values``; a value outside [low, high] is an error (a slider would move it)."""
    import ipywidgets as W
    outside = [f"{n} = {v:.3g}" for n, v in zip(names, values) if not low <= v <= high]
    if outside:
        raise ValueError(f"{what} {', '.join(outside)} lie outside the sliders' range [{low}, {high}]: pass low= "
                         "and high= to widen it")
    return {n: W.FloatSlider(value=float(v), min=low, max=high, step=step, description=n, continuous_update=False,
                             tooltip=L.AU_NAMES.get(n, n), readout_format=".2f") for n, v in zip(names, values)}


def au_sliders(editor: Callable, image: torch.Tensor, source_aus, *, relative: bool = False,
               aus: Sequence[str] = L.AUS, low: float | None = None, high: float | None = None,
               step: float = 0.05, size: float = 1.8, change_scale: float = 0.25) -> EditorWidget:
    """AU sliders over ``editor`` for one face (``image``, its AUs ``source_aus``), one per AU of ``aus``.
    Absolute (GANimation): the sliders are the target AUs, from the source's, range [0, 1]. ``relative=True``
    (Ling et al.): they are v_rel, from 0, range [-1, 1]. The state is :func:`au_edit`."""
    src = _labels(source_aus, len(L.AUS), "source_aus")[0]
    low = (-1.0 if relative else 0.0) if low is None else low
    high = 1.0 if high is None else high
    start = [0.0 if relative else float(src[_index(a, L.AUS, "AU")]) for a in aus]
    controls = _sliders(aus, start, low, high, step, "the source AUs" if not relative else "v_rel's")

    def state():
        return au_edit(editor, image, src, {a: s.value for a, s in controls.items()}, relative=relative)
    return EditorWidget(controls, state, lambda e: draw_edits(image, [e], size=size, change_scale=change_scale,
                                                              pyplot=False))


def expression_interpolation(editor: Callable, image: torch.Tensor, source_aus, *, start: str = "sad",
                             end: str = "happy", alpha_range: tuple[float, float] = (0.0, 1.0), step: float = 0.05,
                             size: float = 1.8, change_scale: float = 0.25) -> EditorWidget:
    """Eq. 2 as a widget: two expressions (menus, prototypes of ``labels.EXPRESSIONS``) and α (the paper's
    range [0, 1]; Fig. 1 goes to 1.25: widen ``alpha_range``). The state is :func:`interpolation_edit`."""
    import ipywidgets as W
    src = _labels(source_aus, len(L.AUS), "source_aus")
    for e in (start, end):
        _index(e, L.EXPRESSIONS, "expression")
    controls = {"from": W.Dropdown(options=list(L.EXPRESSIONS), value=start, description="v_1"),
                "to": W.Dropdown(options=list(L.EXPRESSIONS), value=end, description="v_2"),
                "alpha": W.FloatSlider(value=alpha_range[0], min=alpha_range[0], max=alpha_range[1], step=step,
                                       description="α", continuous_update=False, readout_format=".2f")}

    def state():
        return interpolation_edit(editor, image, src, controls["from"].value, controls["to"].value,
                                  controls["alpha"].value)
    return EditorWidget(controls, state, lambda e: draw_edits(image, [e], size=size, change_scale=change_scale,
                                                              pyplot=False))


def attribute_toggles(editor: Callable, image: torch.Tensor, source_labels, *, names: Sequence[str] = L.ATTRIBUTES,
                      size: float = 1.8, change_scale: float = 0.25) -> EditorWidget:
    """One toggle per attribute of ``names`` (the 13 of ``labels.ATTRIBUTES``): "+Bangs" adds an attribute the
    face lacks, "−Bangs" removes one it has; pressed toggles are flipped together. The state is
    :func:`toggle_edit`."""
    import ipywidgets as W
    src = _binary(source_labels, names)
    controls = {n: W.ToggleButton(value=False, description=("−" if src[0, k] else "+") + n.replace("_", " "),
                                  tooltip=f"flip {n} ({'on' if src[0, k] else 'off'} in the input)")
                for k, n in enumerate(names)}

    def state():
        return toggle_edit(editor, image, src, [n for n, c in controls.items() if c.value], names=names)
    return EditorWidget(controls, state, lambda e: draw_edits(image, [e], size=size, change_scale=change_scale,
                                                              pyplot=False), columns=4, width="150px")


def deformation_grid(generator: Callable, image: torch.Tensor, source_aus, *, aus: Sequence[str] = DEFGAN_AUS,
                     low: float = 0.0, high: float = 1.0, step: float = 0.05, grid_step: int = 0,
                     exaggerate: float = 3.0, size: float = 1.8, change_scale: float = 0.25) -> EditorWidget:
    """AU sliders (absolute, from the source's AUs; by default the four AUs of DefGAN's Sec. 4.3) over
    DefGAN's ``generator``: the warped face with the grid it was sampled at, offsets drawn ``exaggerate``
    times longer, then the final image and its change. The state is :func:`deformation_edit`."""
    src = _labels(source_aus, len(L.AUS), "source_aus")[0]
    controls = _sliders(aus, [float(src[_index(a, L.AUS, "AU")]) for a in aus], low, high, step, "the source AUs")

    def state():
        return deformation_edit(generator, image, src, {a: s.value for a, s in controls.items()})
    return EditorWidget(controls, state, lambda e: draw_edits(image, [e], size=size, change_scale=change_scale,
                                                              grid_step=grid_step, exaggerate=exaggerate,
                                                              pyplot=False), columns=2)


# --- static figures: the same states at a few control values ----------------------------------------------
def au_slider_figure(editor: Callable, image: torch.Tensor, source_aus, settings: Sequence[Mapping[str, float]], *,
                     relative: bool = False, size: float = 1.3, change_scale: float = 0.25) -> Figure:
    """:func:`au_sliders` frozen at ``settings`` (each ``{"AU12": 0.8, ...}``, slider positions as
    :func:`au_edit` reads them): one column per setting."""
    edits = [au_edit(editor, image, source_aus, s, relative=relative) for s in settings]
    return draw_edits(image, edits, size=size, change_scale=change_scale)


def interpolation_figure(editor: Callable, image: torch.Tensor, source_aus, alphas: Sequence[float], *,
                         start: str = "sad", end: str = "happy", size: float = 1.3,
                         change_scale: float = 0.25) -> Figure:
    """:func:`expression_interpolation` frozen at each α of ``alphas``: one column per α."""
    edits = [interpolation_edit(editor, image, source_aus, start, end, a) for a in alphas]
    return draw_edits(image, edits, size=size, change_scale=change_scale)


def toggle_figure(editor: Callable, image: torch.Tensor, source_labels, *, toggled: Sequence | None = None,
                  names: Sequence[str] = L.ATTRIBUTES, size: float = 1.05, change_scale: float = 0.25) -> Figure:
    """:func:`attribute_toggles` with each toggle of ``toggled`` pressed alone (default: every attribute of
    ``names``; an entry may also be a list of names pressed together): one column per entry."""
    toggled = list(names) if toggled is None else list(toggled)
    edits = [toggle_edit(editor, image, source_labels, [t] if isinstance(t, str) else t, names=names)
             for t in toggled]
    return draw_edits(image, edits, size=size, change_scale=change_scale)


def deformation_figure(generator: Callable, image: torch.Tensor, source_aus, settings: Sequence[Mapping[str, float]],
                       *, grid_step: int = 0, exaggerate: float = 3.0, size: float = 1.3,
                       change_scale: float = 0.25) -> Figure:
    """:func:`deformation_grid` frozen at ``settings`` (each ``{"AU26": 1.0, ...}``): one column per setting."""
    edits = [deformation_edit(generator, image, source_aus, s) for s in settings]
    return draw_edits(image, edits, size=size, change_scale=change_scale, grid_step=grid_step, exaggerate=exaggerate)
