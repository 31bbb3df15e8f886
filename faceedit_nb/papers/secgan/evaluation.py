"""Measuring the SeCGAN series on SynthFaces: the models' tables through the evaluation harness, per-class
paired differences (Figure 4's claims), where an edit's change falls against the attribute's true region
(SynthFaces re-renders every edit, so the region is known), and the figures of the results chapter."""
from __future__ import annotations

from typing import Sequence

import torch

from ... import claims as C
from ... import labels as L
from ...metrics import evaluate, ground_truth_editor
from ...metrics.protocols import flip_attribute

__all__ = ["evaluate_all", "is_difference", "edit_classes", "class_difference", "group_gain_difference", "true_regions",
           "change_focus", "focus_difference", "show_edits"]


class _WithoutRender:
    """A SynthFaces split whose faces the harness cannot re-render: it then skips the ground-truth metrics
    (GT L1, PSNR, SSIM), which cost a render per edit and per model."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]

    def batch(self, idx):
        return self.dataset.batch(idx)


def evaluate_all(editors: dict, test, oracles, protocol: str, *, batch_size: int = 100, kid_subsets: int = 100,
                 seed: int = 0, swav=None, ground_truth: bool = True, ground_truth_metrics: bool = True) -> dict:
    """``{name: EvalTable}`` of each editor on the same faces and targets (paired), the ground-truth
    re-render first (``ground_truth``); ``swav`` (a path to SwAV weights) adds the paper's ssFID;
    ``ground_truth_metrics=False`` skips the error against the re-render (a fifth of the time)."""
    tables = {}
    if ground_truth:
        editors = {"ground truth (re-render)": ground_truth_editor(test), **editors}
    if not ground_truth_metrics:
        test = _WithoutRender(test)
    for name, ed in editors.items():
        tables[name] = evaluate(ed, test, oracles, protocol=protocol, batch_size=batch_size, kid_subsets=kid_subsets,
                                seed=seed, parse=False, swav=swav)
    return tables


def is_difference(a, b, *, splits: int = 10) -> C.Difference:
    """IS (own features) of table ``a`` minus ``b``. IS has no per-edit value to pair: the standard error of each
    comes from its spread over the ``splits`` subsets (std / sqrt(splits)), combined as independent (normal
    approximation)."""
    def row(t):
        return next(r for r in t.rows if r["metric"] == "is_own" and r["class"] == "overall")
    ra, rb = row(a), row(b)
    est = ra["value"] - rb["value"]
    se = float(((ra["std"] or 0.0) ** 2 + (rb["std"] or 0.0) ** 2) ** 0.5 / splits ** 0.5)
    return C.Difference(est, est - C.Z95 * se, est + C.Z95 * se, se, splits,
                        f"IS over {splits} splits, normal approximation")


def edit_classes(table, n_faces: int, batch_size: int, n_classes: int) -> torch.Tensor:
    """The target class of each per-edit record (the harness stores edits batch by batch, target by target,
    face by face); checked against the recorded face of every edit."""
    cls, faces = [], []
    for lo in range(0, n_faces, batch_size):
        idx = torch.arange(lo, min(n_faces, lo + batch_size))
        for k in range(n_classes):
            cls.append(torch.full((len(idx),), k))
            faces.append(idx)
    cls, faces = torch.cat(cls), torch.cat(faces)
    recorded = table.edits["face"]
    if len(recorded) != len(faces) or not torch.equal(recorded.cpu().long(), faces):
        raise ValueError("the table's edits are not in the harness's order (batch, target, face): "
                         "evaluate with include_source=True and the same batch_size")
    return cls


def class_difference(a, b, k: int, *, metric: str, n_faces: int, batch_size: int, n_classes: int) -> C.Difference:
    """Accuracy of table ``a`` minus ``b`` on the edits to class ``k`` only (McNemar, paired edits)."""
    hits = f"{metric}_hit"
    cls = edit_classes(a, n_faces, batch_size, n_classes)
    keep = cls == k
    if hits == "eea_hit":  # EEA records only edits with a known target: all of them in the expression protocol
        keep = keep[: len(a.edits[hits])]
    return C.paired_rate_difference(a.edits[hits][keep], b.edits[hits][keep])


def group_gain_difference(a, b, group: Sequence[int], *, metric: str, n_faces: int, batch_size: int, n_classes: int,
                          n_boot: int = 1000, seed: int = 0) -> C.Difference:
    """Whether ``a`` gains more over ``b`` on the classes of ``group`` than on the others: per face, the mean
    gain in hits (a - b) over its edits to ``group`` minus that over its other edits, averaged over faces
    (paired bootstrap over faces). The paper's "gains largest on shape attributes" as one number."""
    hits = f"{metric}_hit"
    cls = edit_classes(a, n_faces, batch_size, n_classes)
    faces = a.edits["face"].long()
    gain = a.edits[hits].double() - b.edits[hits].double()
    in_group = torch.isin(cls, torch.as_tensor(list(group)))
    per_face_in, per_face_out = torch.zeros(n_faces, dtype=torch.float64), torch.zeros(n_faces, dtype=torch.float64)
    per_face_in.index_add_(0, faces[in_group], gain[in_group])
    per_face_out.index_add_(0, faces[~in_group], gain[~in_group])
    n_in = torch.bincount(faces[in_group], minlength=n_faces).clamp_min(1)
    n_out = torch.bincount(faces[~in_group], minlength=n_faces).clamp_min(1)
    return C.paired_bootstrap(per_face_in / n_in, per_face_out / n_out, n_boot=n_boot, seed=seed,
                              test=f"paired bootstrap over {n_faces:,} faces (gain on the group minus gain elsewhere)")


def _edit_labels(b: dict, k: int, domain: str):
    if domain == "expression":
        return b["expression"], torch.full_like(b["expression"], k)
    src = b["attributes"].float()
    return src, flip_attribute(src, k)


@torch.no_grad()
def true_regions(test, k: int, *, n: int | None = None, batch_size: int = 100, threshold: float = 0.05,
                 domain: str = "attributes13") -> torch.Tensor:
    """The true region of edit ``k`` on each of the first ``n`` faces (bool, N x H x W): the pixels SynthFaces'
    re-render with the target moves by more than ``threshold`` (mean absolute change over the colour channels).
    Edit ``k``: attribute ``k`` flipped (AttGAN's rule), or expression ``k``."""
    n = len(test) if n is None else n
    gt = ground_truth_editor(test)
    out = []
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(n, lo + batch_size))
        b = test.batch(idx)
        src, trg = _edit_labels(b, k, domain)
        out.append((gt(b["image"], src, trg, indices=idx) - b["image"]).abs().mean(1) > threshold)
    return torch.cat(out)


@torch.no_grad()
def change_focus(editor, test, k: int, *, n: int | None = None, batch_size: int = 100, threshold: float = 0.05,
                 domain: str = "attributes13", regions: torch.Tensor | None = None) -> torch.Tensor:
    """Per face, the share of an edit's change (mean absolute difference over the colour channels) that falls
    inside the edit's true region (:func:`true_regions`; pass ``regions`` to share them between models).
    Faces whose true region is empty are skipped (NaN)."""
    n = len(test) if n is None else n
    if regions is None:
        regions = true_regions(test, k, n=n, batch_size=batch_size, threshold=threshold, domain=domain)
    out = []
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(n, lo + batch_size))
        b = test.batch(idx)
        x = b["image"]
        src, trg = _edit_labels(b, k, domain)
        kw = {"indices": idx} if getattr(editor, "wants_indices", False) else {}
        edited = editor(x, src, trg, **kw).float().clamp(-1, 1)
        region = regions[idx].float()
        change = (edited - x).abs().mean(1)
        inside, total = (change * region).flatten(1).sum(1), change.flatten(1).sum(1)
        share = torch.where(region.flatten(1).sum(1) > 0, inside / total.clamp_min(1e-12), torch.nan)
        out.append(share)
    return torch.cat(out)


def focus_difference(a: torch.Tensor, b: torch.Tensor, *, seed: int = 0) -> C.Difference:
    """Mean focus share of ``a`` minus ``b`` over the faces where both are defined (paired bootstrap)."""
    ok = torch.isfinite(a) & torch.isfinite(b)
    return C.paired_bootstrap(a[ok], b[ok], seed=seed)


@torch.no_grad()
def show_edits(models: dict, faces: dict, targets: torch.Tensor, *, domain: str, names: Sequence[str],
               title: str = ""):
    """Figure 5: per face, the input, each model's edit, each edit's difference heat map, P's mask of the input
    and the mask G_seg translates it to (the model named last must be a SeCGAN). ``models``: name -> Trained."""
    import matplotlib.pyplot as plt

    from ... import viz
    from .model import backbone_of
    x = faces["image"]
    src = faces["expression"] if domain == "expression" else faces["attributes"].float()
    edits = {n: models[n].editor(x, src, targets).float().clamp(-1, 1) for n in names}
    sec = models[names[-1]]
    bb = backbone_of(sec.config)
    s_in = sec.nets["P"](x)
    s_out = sec.nets["G_seg"](sec.nets["P"].one_hot(x), bb.condition(sec.nets["G"], bb.labels(faces), _as_labels(
        targets, domain)))
    cols = 1 + 2 * len(names) + 2
    rows = len(x)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5, 7.5 / cols * rows * 1.25), squeeze=False)
    for i in range(rows):
        panels = [("input", viz.to_numpy_image(x[i]), {})]
        panels += [(n, viz.to_numpy_image(edits[n][i]), {}) for n in names]
        panels += [(f"|{n} - input|", viz.difference_map(edits[n][i:i + 1], x[i:i + 1])[0],
                    dict(cmap="inferno", vmin=0, vmax=1)) for n in names]
        panels += [("P(input)", s_in[i].argmax(0), dict(cmap="tab20", vmin=0, vmax=19, interpolation="nearest")),
                   ("G_seg mask", s_out[i].argmax(0), dict(cmap="tab20", vmin=0, vmax=19, interpolation="nearest"))]
        for ax, (name, img, kw) in zip(axes[i], panels):
            ax.imshow(img, **kw)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig


def _as_labels(targets: torch.Tensor, domain: str) -> torch.Tensor:
    return targets.long() if domain == "expression" else targets.float()


def target_names(domain: str) -> tuple[str, ...]:
    return L.EXPRESSIONS if domain == "expression" else L.ATTRIBUTES
