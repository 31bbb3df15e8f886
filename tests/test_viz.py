"""Figures shared by the chapters: the grid of edits beside SynthFaces' ground truth."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from faceedit_nb import labels as L  # noqa: E402
from faceedit_nb import viz  # noqa: E402
from faceedit_nb.data import SynthFaces  # noqa: E402
from faceedit_nb.metrics import ground_truth_editor, identity_editor  # noqa: E402


def test_edit_grid_rows_are_editors_then_ground_truth_columns_input_then_targets():
    faces = SynthFaces("test", size=32, n=4, n_identities=2)
    idx = torch.tensor([1, 3])
    targets = lambda src: [torch.full_like(src, k) for k in (L.EXPRESSIONS.index("happy"), L.EXPRESSIONS.index("sad"))]
    fig = viz.edit_grid({"nothing": identity_editor}, faces, idx, targets, ["happy", "sad"])
    axes = np.array(fig.axes).reshape(4, 3)  # 2 faces x (editor, ground truth) rows, input + 2 targets
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["nothing", "ground truth"] * 2
    assert [ax.get_title() for ax in axes[0]] == ["input", "happy", "sad"]
    shown = lambda ax: ax.get_images()[0].get_array()
    x = faces.batch(idx)["image"]
    truth = ground_truth_editor(faces)(x, None, torch.full((2,), L.EXPRESSIONS.index("sad")), indices=idx)
    np.testing.assert_allclose(shown(axes[2, 2]), viz.to_numpy_image(x[1]), atol=1e-6)  # identity: the input
    np.testing.assert_allclose(shown(axes[3, 2]), viz.to_numpy_image(truth[1]), atol=1e-6)  # face 2, sad
    assert not np.allclose(shown(axes[3, 2]), shown(axes[3, 1]))  # sad and happy re-renders differ
    plt.close(fig)


def test_departures_table_writes_small_rates_in_full():
    from faceedit_nb.papers.lssl import config_for
    table = viz.departures_table(config_for("cpu"), "cpu")
    text = table.data if hasattr(table, "data") else str(table)
    assert "| `g_lr` | 0.0001 | 0.0005 |" in text and "0.000 |" not in text
