"""Synthesize to learn: LSSL's edits as training data for an expression recogniser (Fig. 8, Table 1), a recogniser
trained on real faces reading each method's edits (Table 2), pose normalisation before recognition (Table 3), the
mode-collapse check of Eq. 6, and every edit against SynthFaces' true re-render (what the paper could not
measure). An "edit function" here is ``edit(indices, targets) -> images`` over a fixed set of source faces."""
from __future__ import annotations

import itertools
from typing import Callable

import torch
import torch.nn.functional as F

from ... import labels as L
from ...device import DEVICE, torch_threads
from ...methods import adam, seeded
from ...nets.classifiers import AttributeClassifier
from .config import LSSLConfig
from .data import attribute_labels, lssl_faces, pose_pairs, true_edit
from .train import LSSLEditor, refine

__all__ = ["Faces", "real_faces", "edit_function", "edit_table", "synthesize", "build_recognizer", "train_recognizer",
           "recognition_hits", "augmentation_curve", "pose_recognition", "diversity", "edit_error"]


class Faces:
    """A fixed set of faces in memory: images (float, [-1, 1]), landmarks and classes, from :func:`real_faces`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, landmarks: torch.Tensor, dataset=None):
        self.images, self.labels, self.landmarks, self.dataset = images, labels, landmarks, dataset

    def __len__(self) -> int:
        return len(self.images)


def real_faces(cfg: LSSLConfig, split: str, n: int, n_identities: int | None = None) -> Faces:
    """``n`` SynthFaces photo faces of ``split`` as LSSL's models see them (:func:`.data.lssl_faces`): of the
    GAN's training people (split "train"; the first ``n_identities`` of them, default ``n // 8``) or of held-out
    people ("test")."""
    ds = lssl_faces(cfg, split, n=n, n_identities=n_identities or max(1, n // 8))
    parts = [ds.batch(torch.arange(lo, min(n, lo + 256))) for lo in range(0, n, 256)]
    return Faces(torch.cat([p["image"] for p in parts]), attribute_labels(ds, cfg.attribute),
                 torch.cat([p["landmarks"] for p in parts]).float(), ds)


def edit_function(editor, faces: Faces, batch_size: int = 256, device=None) -> Callable:
    """``edit(indices, targets)``: ``editor`` (an :class:`.train.LSSLEditor`, which reads each face's landmarks,
    or any harness editor such as StarGAN's) applied to ``faces`` on ``device`` (default: where an LSSL editor's
    generator is, else the book's device, where :func:`faceedit_nb.methods.load_method` puts networks); edits
    come back on the CPU."""
    if device is None:
        device = next(editor.G.parameters()).device if isinstance(editor, LSSLEditor) else DEVICE

    @torch.no_grad()
    def edit(indices: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = []
        for lo in range(0, len(indices), batch_size):
            idx, trg = indices[lo:lo + batch_size], targets[lo:lo + batch_size]
            x, src, trg = faces.images[idx].to(device), faces.labels[idx].to(device), trg.to(device)
            if isinstance(editor, LSSLEditor):
                out.append(editor(x, src, trg, landmarks=faces.landmarks[idx]).float().cpu())
            else:
                out.append(editor(x, src, trg).float().cpu())
        return torch.cat(out).clamp(-1, 1)
    edit.faces = faces
    return edit


def edit_table(edit: Callable, faces: Faces, n_classes: int) -> Callable:
    """``edit`` with every face's edit to every class computed once and kept as 8-bit images (as a saved edit
    would be): the augmentation study draws from it for every seed and count without editing again."""
    idx = torch.arange(len(faces))
    table = torch.stack([((edit(idx, torch.full_like(idx, k)) + 1) * 127.5).round().to(torch.uint8)
                         for k in range(n_classes)])

    def lookup(indices: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return table[targets.long(), indices.long()].float() / 127.5 - 1
    lookup.faces = faces
    return lookup


def synthesize(edit: Callable, n_sources: int, per_class: int, n_classes: int, seed: int = 0):
    """``per_class`` synthetic faces of every class: random source faces (seeded) edited to that class.
    Returns ``(images, labels)``."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(n_sources, (per_class * n_classes,), generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return (edit(src, labels) if len(src) else torch.empty(0)), labels


def build_recognizer(n_classes: int, image_size: int, width: int = 16) -> AttributeClassifier:
    """The expression recogniser of the augmentation study: STGAN's evaluation classifier (four conv pairs at
    ``width``), trained from scratch (the paper fine-tunes a CNN; none is available offline)."""
    return AttributeClassifier(n_classes, dim=width, image_size=image_size, stages=4)


@torch.enable_grad()
def train_recognizer(images: torch.Tensor, labels: torch.Tensor, *, n_classes: int, steps: int = 300,
                     batch_size: int = 64, lr: float = 1e-3, width: int = 16, seed: int = 0,
                     threads: int | None = None) -> AttributeClassifier:
    """Train :func:`build_recognizer` on ``images`` / ``labels`` (cross-entropy, Adam, random flips)."""
    if len(images) == 0:
        raise ValueError("train_recognizer needs at least one image")
    net = seeded(seed, lambda: {"R": build_recognizer(n_classes, images.shape[-1], width)})["R"].to(DEVICE).train()
    opt = adam(net, lr, 0.9, 0.999)
    g = torch.Generator().manual_seed(seed + 1)
    with torch_threads(threads):
        for _ in range(steps):
            idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g)
            x = images[idx].float().to(DEVICE)
            flip = (torch.rand(len(idx), generator=g) < 0.5).to(DEVICE)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), labels[idx].long().to(DEVICE))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def recognition_hits(net, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Per image: did ``net`` recognise its class (bool)."""
    dev = next(net.parameters()).device
    pred = torch.cat([net(images[lo:lo + batch_size].float().to(dev)).argmax(1).cpu()
                      for lo in range(0, len(images), batch_size)])
    return pred == labels.cpu()


def augmentation_curve(edits: dict[str, Callable], real: Faces, test: Faces, *, counts, seeds=(0,), n_classes: int,
                       steps: int = 300, width: int = 16, threads: int | None = None,
                       real_only: bool = True) -> list[dict]:
    """Fig. 8 / Table 1: for each method's edit function, each number of synthetic faces per class (0 = the real
    faces alone, shared by all methods) and each seed, a recogniser trained on the real faces plus the synthetic
    ones, tested on held-out people. Rows: ``{"method", "per_class", "seed", "accuracy", "hits"}`` (``hits``:
    per test face, for paired tests: every recogniser reads the same faces). ``real_only=False`` leaves out the
    real-only recognisers (a second call on other methods, whose first call trained them)."""
    rows = []
    for seed in seeds:
        if real_only:
            rows.append(_curve_row("real only", 0, seed, real, test, None, n_classes, steps, width, threads))
        for (name, edit), per_class in itertools.product(edits.items(), [c for c in counts if c]):
            rows.append(_curve_row(name, per_class, seed, real, test, edit, n_classes, steps, width, threads))
    return rows


def _curve_row(name, per_class, seed, real, test, edit, n_classes, steps, width, threads) -> dict:
    images, labels = real.images, real.labels
    if edit is not None:
        fake, fake_labels = synthesize(edit, len(real), per_class, n_classes, seed=1000 + seed)
        images, labels = torch.cat([images, fake]), torch.cat([labels, fake_labels])
    net = train_recognizer(images, labels, n_classes=n_classes, steps=steps, width=width, seed=seed, threads=threads)
    hits = recognition_hits(net, test.images, test.labels)
    return {"method": name, "per_class": per_class, "seed": seed, "accuracy": float(hits.float().mean()),
            "hits": hits}


@torch.no_grad()
def pose_recognition(refiners: dict[str, tuple], recognizer, cfg: LSSLConfig, *, n: int = 160,
                     n_identities: int = 20) -> dict[str, dict[int, torch.Tensor]]:
    """Table 3: held-out people at yaw 15, 30 and 45 degrees, recognised by ``recognizer`` (trained on photo
    faces, near frontal) as the real profile photo, the simulated (flat) frontal render, each refiner's frontal
    face (``refiners``: name -> (G, cfg) of :func:`.config.pose_configs`), and the real frontal photo (the
    ceiling the paper cannot measure). Returns ``{row: {yaw: hits per face}}``."""
    out: dict[str, dict[int, torch.Tensor]] = {}
    for k, yaw in enumerate(L.YAW_ANGLES[1:], start=1):
        pairs = pose_pairs(cfg, "test", n, n_identities, yaw_class=k)
        sim, prof = pairs["simulated"].float() / 127.5 - 1, pairs["profile"].float() / 127.5 - 1
        rows = {"Real Profile Face Images": prof, "Simulated Frontal Face Images": sim}
        rows.update({name: refine(G, c, sim, prof).clamp(-1, 1) for name, (G, c) in refiners.items()})
        rows["Real Frontal Face Images"] = pairs["frontal"].float() / 127.5 - 1
        for name, images in rows.items():
            out.setdefault(name, {})[yaw] = recognition_hits(recognizer, images, pairs["expression"])
    return out


@torch.no_grad()
def diversity(edit: Callable, n_sources: int, n_classes: int, *, n: int = 64) -> dict[str, torch.Tensor]:
    """The mode-collapse check of Eq. 6, per source face (the first ``n``): ``across_targets``, the mean L1
    between its edits to every pair of classes (one input, many targets), and ``across_inputs``, for each
    target the mean L1 between this face's edit and the other faces' edits, divided by the same mean between
    the inputs themselves (1: as varied as the inputs; 0: one output for every input)."""
    n = min(n, n_sources)
    idx = torch.arange(n)
    edits = torch.stack([edit(idx, torch.full((n,), k)) for k in range(n_classes)])  # C x n x 3 x S x S
    flat = edits.flatten(2)
    pairs = list(itertools.combinations(range(n_classes), 2))
    across_targets = torch.stack([(flat[a] - flat[b]).abs().mean(1) for a, b in pairs]).mean(0)
    inputs = edit.faces.images[:n].flatten(1) if hasattr(edit, "faces") else None  # edit_function's faces
    spread = torch.cdist(flat, flat, p=1).sum(2) / (n - 1) / flat.shape[-1]          # C x n
    if inputs is None:
        return {"across_targets": across_targets, "across_inputs": spread.mean(0)}
    base = torch.cdist(inputs[None], inputs[None], p=1)[0].sum(1) / (n - 1) / inputs.shape[-1]
    return {"across_targets": across_targets, "across_inputs": spread.mean(0) / base}


@torch.no_grad()
def edit_error(editor: LSSLEditor, faces: Faces, attribute: str, n_classes: int, *, n: int = 64,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Each face edited to a random other class against SynthFaces' true re-render of that edit (L1 on [0, 1]
    per face), beside doing nothing (the input against the truth). ``faces`` must come from
    :func:`real_faces` (it keeps the data set)."""
    n = min(n, len(faces))
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n)
    target = (faces.labels[:n] + torch.randint(1, n_classes, (n,), generator=g)) % n_classes
    truth = true_edit(faces.dataset, idx, attribute, target)["image"]
    out = edit_function(editor, faces)(idx, target)
    l1 = lambda a, b: (a - b).abs().flatten(1).mean(1) / 2  # noqa: E731  ([-1, 1] -> [0, 1] units)
    return {"edit": l1(out, truth), "doing nothing": l1(faces.images[:n], truth), "target": target}
