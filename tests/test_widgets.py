"""faceedit_nb.widgets: the state functions, the widgets driven without a front end (a control's value set
in Python runs the same callback a slider move does), and the static figures.

The models are the chapters' networks at the smoke settings, built but not trained (what matters here is
what reaches them and what is drawn, not how well they edit), wrapped to record what they receive."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from faceedit_nb import labels as L  # noqa: E402
from faceedit_nb import widgets as Wd  # noqa: E402
from faceedit_nb.data import SynthFaces  # noqa: E402
from faceedit_nb.metrics import ground_truth_editor  # noqa: E402
from faceedit_nb.papers import attgan as AT  # noqa: E402
from faceedit_nb.papers import defgan as DG  # noqa: E402
from faceedit_nb.papers import ganimation as GA  # noqa: E402
from faceedit_nb.papers import relative_au as R  # noqa: E402
from faceedit_nb.viz import to_numpy_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32


class Recording:
    """An editor that remembers the labels of its last call."""

    def __init__(self, editor):
        self.editor, self.calls = editor, []

    def __call__(self, images, source, target):
        self.calls.append((source.clone(), target.clone()))
        return self.editor(images, source, target)


@pytest.fixture(scope="module")
def face():
    return SynthFaces("test", size=SIZE, n=8, n_identities=2, seed=0, au_mode="mixed").batch(torch.tensor([3]))


@pytest.fixture(scope="module")
def ganimation():
    torch.manual_seed(0)
    cfg = GA.chapter_configs("smoke")["GANimation"]
    return GA.ganimation_editor(GA.build_ganimation(cfg)["G"].eval(), cfg)


@pytest.fixture(scope="module")
def relative():
    torch.manual_seed(0)
    cfg = R.config_for("smoke")
    return R.relative_au_editor(R.build_relative_au(cfg)["G"].eval(), cfg)


@pytest.fixture(scope="module")
def defgan():
    """DefGAN's generator with a random offset layer (it starts at zero: the identity grid), so that its grid
    moves every pixel by a different amount."""
    torch.manual_seed(0)
    G = DG.build_defgan(DG.config_for("smoke"))["G"].eval()
    torch.nn.init.normal_(G.deform.offsets.weight, std=0.05)
    return G


def test_a_slider_move_changes_the_target_the_editor_receives_and_the_image_shown(ganimation, face):
    ed = Recording(ganimation)
    w = Wd.au_sliders(ed, face["image"][0], face["aus"][0])
    assert list(w.controls) == list(L.AUS)
    source, target = ed.calls[-1]
    assert torch.equal(target, face["aus"]) and torch.equal(source, face["aus"])  # sliders start at the face's AUs
    png, image = w.view.value, w.last.image
    w.controls["AU12"].value = 0.9
    _, target = ed.calls[-1]
    k = L.AUS.index("AU12")
    assert target[0, k] == pytest.approx(0.9)
    assert torch.equal(torch.cat([target[0, :k], target[0, k + 1:]]),
                       torch.cat([face["aus"][0, :k], face["aus"][0, k + 1:]]))  # every other AU kept
    assert w.view.value != png and not torch.equal(w.last.image, image)
    assert torch.equal(w.last.image, ganimation(face["image"], face["aus"], target)[0])
    assert w.seconds < 1.0
    w.reset()
    assert torch.equal(ed.calls[-1][1], face["aus"])
    assert w.controls["AU12"].value == pytest.approx(float(face["aus"][0, k]))


def test_relative_sliders_are_v_rel_and_start_at_zero(relative, face):
    ed = Recording(relative)
    w = Wd.au_sliders(ed, face["image"][0], face["aus"][0], relative=True)
    assert all(c.value == 0 and c.min == -1 and c.max == 1 for c in w.controls.values())
    w.controls["AU04"].value = -0.5
    source, target = ed.calls[-1]
    v_rel = R.relative_aus(target, source)  # what the relative editor feeds the generator (Eq. 1)
    assert torch.allclose(v_rel, -0.5 * torch.eye(len(L.AUS))[L.AUS.index("AU04")][None], atol=1e-6)
    assert w.last.title == "AU04 -0.50"


def test_source_aus_outside_the_slider_range_are_an_error_not_moved(ganimation, face):
    aus = face["aus"][0].clone()
    aus[0] = 1.4
    with pytest.raises(ValueError, match=r"AU01 = 1\.4.*high="):
        Wd.au_sliders(ganimation, face["image"][0], aus)
    Wd.au_sliders(ganimation, face["image"][0], aus, high=1.5)  # widened: accepted


def test_interpolation_gives_the_endpoints_at_0_and_1_and_eq_2_between(relative, face):
    img, src = face["image"][0], face["aus"]
    sad, happy = (L.PROTOTYPES[L.EXPRESSIONS.index(e)][None] for e in ("sad", "happy"))
    assert torch.equal(Wd.interpolation_edit(relative, img, src, "sad", "happy", 0.0).target, sad)
    assert torch.equal(Wd.interpolation_edit(relative, img, src, "sad", "happy", 1.0).target, happy)
    mid = Wd.interpolation_edit(relative, img, src, "sad", "happy", 0.4)
    assert torch.allclose(mid.extras["v_inter"], R.interpolated_aus(sad, happy, src, 0.4), atol=1e-6)
    ed = Recording(relative)
    w = Wd.expression_interpolation(ed, img, src)
    assert torch.equal(ed.calls[-1][1], sad)
    w.controls["alpha"].value = 1.0
    assert torch.equal(ed.calls[-1][1], happy)
    w.controls["to"].value = "surprised"
    assert torch.equal(ed.calls[-1][1], L.PROTOTYPES[L.EXPRESSIONS.index("surprised")][None])
    with pytest.raises(KeyError, match="unknown expression 'joyful'"):
        Wd.expression_interpolation(relative, img, src, end="joyful")


def test_each_toggle_flips_exactly_one_attribute():
    cfg = AT.chapter_configs("smoke")["AttGAN"]
    torch.manual_seed(0)
    ed = Recording(AT.attgan_editor(AT.build_attgan(cfg)["G"].eval(), cfg))
    face = SynthFaces("test", size=SIZE, n=8, n_identities=2, seed=0).batch(torch.tensor([1]))
    src = face["attributes"].float()
    w = Wd.attribute_toggles(ed, face["image"][0], src[0])
    assert torch.equal(ed.calls[-1][1], src)
    for k, name in enumerate(L.ATTRIBUTES):
        w.controls[name].value = True
        changed = (ed.calls[-1][1] != src)[0]
        assert changed.nonzero().flatten().tolist() == [k], name
        assert ed.calls[-1][1][0, k] == 1 - src[0, k]
        assert w.controls[name].description[0] == ("−" if src[0, k] else "+")
        w.controls[name].value = False
        assert torch.equal(ed.calls[-1][1], src)
    w.controls["Bangs"].value = w.controls["Eyeglasses"].value = True
    assert int((ed.calls[-1][1] != src).sum()) == 2
    with pytest.raises(ValueError, match="0/1 attributes"):
        Wd.attribute_toggles(ed, face["image"][0], src[0] * 0.5)


def test_the_grid_drawn_is_the_deformation_the_model_produced(defgan, face):
    img, src = face["image"], face["aus"]
    edit = Wd.deformation_edit(defgan, img, src, {"AU26": 1.0})
    target = src.clone()
    target[0, L.AUS.index("AU26")] = 1.0
    with torch.no_grad():
        out = defgan(img, src, target)
    offsets = DG.grid_to_pixels(out["grid"])[0]
    assert torch.allclose(edit.extras["offsets"], offsets, atol=1e-5) and float(offsets.abs().max()) > 0.05
    assert torch.equal(edit.image, out["output"][0]) and torch.equal(edit.extras["deformed"], out["deformed"][0])
    step, exaggerate = 4, 2.0
    fig = Wd.draw_edits(img, [edit], grid_step=step, exaggerate=exaggerate, pyplot=False)
    lines = fig.axes[1].get_lines()  # the edit's column, first row: the warped face and its grid
    rows = list(range(step // 2, SIZE, step))
    assert len(lines) == 2 * len(rows)
    for line, r in zip(lines, rows):  # row r of pixels, each at the point it samples
        np.testing.assert_allclose(line.get_xdata(), np.arange(SIZE) + exaggerate * offsets[r, :, 0].numpy(), atol=1e-4)
        np.testing.assert_allclose(line.get_ydata(), r + exaggerate * offsets[r, :, 1].numpy(), atol=1e-4)
    w = Wd.deformation_grid(defgan, img[0], src[0])
    assert list(w.controls) == list(Wd.DEFGAN_AUS)
    before = w.last.extras["offsets"]
    w.controls["AU26"].value = 1.0
    assert torch.allclose(w.last.extras["offsets"], offsets, atol=1e-5) and not torch.equal(before, offsets)
    with pytest.raises(TypeError, match="DefGAN's generator"):
        Wd.deformation_edit(lambda x, s, t: x, img, src, {})


def test_static_figures_have_one_panel_per_value_drawn_from_the_same_state(ganimation, relative, defgan, face):
    img, src = face["image"][0], face["aus"][0]
    settings = [{"AU12": 1.0}, {"AU04": 0.8, "AU15": 0.6}, {"AU26": 0.0}]
    fig = Wd.au_slider_figure(ganimation, img, src, settings)
    top = fig.axes[:len(settings) + 1]  # the first row: the input, then one panel per setting
    assert [ax.get_title().replace("\n", ", ") for ax in top] == ["input", "AU12 = 1.00", "AU04 = 0.80, AU15 = 0.60",
                                                                   "AU26 = 0.00"]
    for ax, s in zip(top[1:], settings):  # what the figure shows is what the widget's state gives
        shown = ax.get_images()[0].get_array()
        np.testing.assert_allclose(shown, to_numpy_image(Wd.au_edit(ganimation, img, src, s).image))
    assert len(fig.axes) == 2 * (len(settings) + 1)
    plt.close(fig)
    fig = Wd.interpolation_figure(relative, img, src, [0.0, 0.5, 1.0])
    assert [ax.get_title() for ax in fig.axes[1:4]] == [f"sad → happy\nα = {a:.2f}" for a in (0.0, 0.5, 1.0)]
    plt.close(fig)
    fig = Wd.deformation_figure(defgan, img, src, [{"AU04": 1.0}, {"AU26": 1.0}])
    assert len(fig.axes) == 3 * 3 and all(ax.get_images() for ax in fig.axes[1:3])
    plt.close(fig)
    cfg = AT.chapter_configs("smoke")["AttGAN"]
    at = AT.attgan_editor(AT.build_attgan(cfg)["G"].eval(), cfg)
    attrs = SynthFaces("test", size=SIZE, n=8, n_identities=2, seed=0).batch(torch.tensor([1]))["attributes"][0]
    fig = Wd.toggle_figure(at, img, attrs)
    assert len(fig.axes) == 2 * (len(L.ATTRIBUTES) + 1)
    plt.close(fig)


def test_clear_errors(ganimation, face):
    img, src = face["image"][0], face["aus"][0]
    with pytest.raises(KeyError, match="unknown AU 'AU99'"):
        Wd.au_edit(ganimation, img, src, {"AU99": 1.0})
    with pytest.raises(ValueError, match="one face"):
        Wd.au_edit(ganimation, face["image"].expand(2, -1, -1, -1), src, {})
    with pytest.raises(ValueError, match="must hold 17 values"):
        Wd.au_edit(ganimation, img, src[:5], {})
    with pytest.raises(ValueError, match="must return an image batch"):
        Wd.au_edit(lambda x, s, t: x[0], img, src, {})
    test = SynthFaces("test", size=SIZE, n=8, n_identities=2, seed=0, au_mode="mixed")
    with pytest.raises(TypeError, match="data-set indices"):
        Wd.au_edit(ground_truth_editor(test), img, src, {})
