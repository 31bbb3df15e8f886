"""The evaluation harness: one function that runs an editor through a paper's protocol and measures it.

    from faceedit_nb.metrics import evaluate, ground_truth_editor
    table = evaluate(ground_truth_editor(test), test, oracles, protocol="expression")
    table.value("eea"), table.value("eea", "happy"); print(table.markdown())

Every test image is translated to every target of the protocol (:mod:`.protocols`), in batches, under
``no_grad`` and autocast. Per-edit quantities are kept (never the images), then summarised per class and
overall into an :class:`~.table.EvalTable` with the number of edits behind each figure.

Editors return images in [-1, 1], like the ones they are given. An editor on another scale is an error
(values beyond 2: [0, 255]-like; never below 0 while the inputs are: [0, 1]-like), and a small overshoot
is clamped with a warning (:class:`OutputRange`; ``table.meta["output_range"]``, ``["clamped_share"]``).

Metrics and the networks behind them (``oracles`` from :func:`faceedit_nb.oracles.load_oracles`):

======================  =================================================================================
``eea``                 expression oracle's argmax equals the target expression (expression targets)
``preservation_error``  expression oracle still sees the source expression after an edit to another one
``attribute_accuracy``  attribute oracle's prediction of the edited attribute equals its target
``id_distance``, ``acd``  cosine / L2 distance of identity-oracle embeddings, edit vs its input
``ed``                  L2 distance of AU-oracle AUs of the edit to the target AUs (AU protocols), or to the
                        ground-truth re-render's AUs (expression protocol on SynthFaces)
``fid_own``, ``kid_own``  FID / KID on the own feature network (default: the expression oracle's
                        penultimate features, divided by their root mean square over the real test
                        images), real test images vs edits, per class and pooled;
                        ``fid_own_class_mean`` is SeCGAN's average of the per-class values
``is_own``              Inception-Score formula on the expression oracle's softmax (10 splits)
``fid_inception``, ``kid_inception``, ``is_inception``, ``ssfid``  the papers' own networks, only when
                        ``inception=`` / ``swav=`` weights are given
``gt_l1``, ``gt_psnr``, ``gt_ssim``  the edit against SynthFaces' re-render of the same face with the
                        target (no paper could measure this); L1 and SSIM are means over edits, PSNR is
                        that of the mean squared error (``inf`` for exact edits); ``gt_miou``: the parsing
                        oracle on the edit vs the re-render's mask; ``gt_realised`` (attribute protocols):
                        share of edits whose re-render shows the edited attribute as asked (SynthFaces
                        puts no moustache on a woman)
======================  =================================================================================

Own-network numbers rank editors on SynthFaces; they are not comparable to the Inception-based figures
printed in the papers.
"""
from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict

import torch
import torch.nn.functional as F

from .. import labels as L
from ..device import DEVICE, autocast
from .classification import attribute_editing_accuracy, expression_editing_accuracy, expression_preservation_error
from .distances import average_content_distance, expression_distance, id_distance
from .distribution import frechet_distance, inception_score_from_logits, kernel_distance
from .image import confusion_per_image, iou_per_class, l1_error, ssim
from .pretrained import load_inception, load_swav
from .protocols import STARGAN_COLUMNS, Protocol, flip_attribute, get_protocol, stargan_targets
from .table import EvalTable

__all__ = ["evaluate", "own_features", "OWN_FEATURES"]

OWN_FEATURES = ("expression", "identity")


def _expression_trunk(oracles):
    """The expression oracle's VGG network (``oracles.nets["expression"]``): ``features`` then ``classifier``,
    whose last layer maps the penultimate features to the logits."""
    net = getattr(oracles, "nets", {}).get("expression")
    if net is None or not hasattr(net, "features") or not isinstance(getattr(net, "classifier", None),
                                                                      torch.nn.Sequential):
        raise AttributeError(f"{type(oracles).__name__} has no expression network with .features and a "
                             f".classifier Sequential (oracles.nets['expression']) to take penultimate features "
                             f"from; use features='identity'")
    return net


def own_features(oracles, which: str = "expression"):
    """The book's own FID/KID feature network: ``(fn, description)``, ``fn(images) -> (B, D)``.

    ``"expression"``: the expression oracle's penultimate features, the input of its last linear layer
    (``oracles.expression_features`` if the oracles have it, else taken from ``oracles.nets["expression"]``);
    ``"identity"``: the identity oracle's unit-norm embedding (``oracles.identity_embedding``).
    :func:`evaluate` divides them by their root mean square over the real test images before FID / KID.
    """
    if which == "expression":
        fn = getattr(oracles, "expression_features", None)
        if fn is None:
            net = _expression_trunk(oracles)
            fn = lambda x: net.classifier[:-1](net.features(x))  # noqa: E731
        return fn, "expression oracle, penultimate layer"
    if which == "identity":
        return oracles.identity_embedding, "identity oracle, embedding"
    raise ValueError(f"features must be one of {OWN_FEATURES}; got {which!r}")


def _expression_and_features(oracles, which: str):
    """``x -> (expression logits, own features)``, one pass through the expression network when the own
    features are its penultimate layer (the logits are its last layer applied to them)."""
    fn, _ = own_features(oracles, which)
    if which == "expression" and not hasattr(oracles, "expression_features"):
        last = _expression_trunk(oracles).classifier[-1]

        def both(x):
            f = fn(x)
            return last(f), f
        return both
    return lambda x: (oracles.expression_logits(x), fn(x))


def _as_net(net, loader):
    if net is None or isinstance(net, torch.nn.Module):
        return net
    return loader(net)  # a path


def _batch(dataset, idx: torch.Tensor) -> dict:
    if hasattr(dataset, "batch"):
        return dataset.batch(idx)
    samples = [dataset[int(i)] for i in idx]
    out = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if torch.is_tensor(vals[0]):
            out[key] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[key] = torch.tensor(vals)
    return out


def _need(b: dict, key: str, protocol: str, dataset) -> torch.Tensor:
    if key not in b:
        raise KeyError(f"protocol {protocol!r} needs {key!r} labels, which {type(dataset).__name__} samples lack")
    return b[key]


def _donors(dataset, protocol: Protocol, n: int, n_targets: int, batch_size: int, gen: torch.Generator):
    """AU donors: (N, slots) indices of the images whose AUs are the targets, and every image's labels."""
    aus, expr = [], []
    for start in range(0, n, batch_size):
        b = _batch(dataset, torch.arange(start, min(n, start + batch_size)))
        aus.append(_need(b, "aus", protocol.name, dataset).float())
        expr.append(b["expression"].long() if "expression" in b else torch.full((len(b["aus"]),), L.NO_EXPRESSION))
    aus, expr = torch.cat(aus), torch.cat(expr)
    if protocol.name == "aus":
        if n < 2:
            raise ValueError("the AU protocol needs at least 2 test images (targets come from other images)")
        d = torch.randint(0, n - 1, (n, n_targets), generator=gen)
        donors = d + (d >= torch.arange(n)[:, None]).long()  # never the image itself
    else:
        donors = torch.full((n, len(L.EXPRESSIONS)), -1, dtype=torch.long)  # -1: no test image shows it
        for e in range(len(L.EXPRESSIONS)):
            pool = (expr == e).nonzero().flatten()
            if len(pool):
                donors[:, e] = pool[torch.randint(0, len(pool), (n,), generator=gen)]
    return donors, aus, expr


def _slots(protocol: Protocol, b: dict, idx: torch.Tensor, dataset, include_source: bool, donors, aus_all, expr_all):
    """Yield one dict per target slot: what the editor gets, how to group, what the target is."""
    name, n = protocol.name, len(idx)
    src_expr = b["expression"].long() if "expression" in b else torch.full((n,), L.NO_EXPRESSION)
    if name == "expression":
        _need(b, "expression", name, dataset)
        for t in range(len(L.EXPRESSIONS)):
            trg = torch.full((n,), t, dtype=torch.long)
            keep = torch.ones(n, dtype=torch.bool) if include_source else src_expr != t
            yield dict(src=src_expr, trg=trg, cls=trg, keep=keep, target_expr=trg, gt={"expression": trg})
    elif name == "attributes":
        src = _need(b, "attributes", name, dataset).float()
        for k in range(len(L.ATTRIBUTES)):
            trg = flip_attribute(src, k)
            yield dict(src=src, trg=trg, cls=torch.full((n,), k), keep=torch.ones(n, dtype=torch.bool),
                       edited=torch.full((n,), k), target_attrs=trg, gt={"attributes": trg})
    elif name == "stargan":
        full = _need(b, "attributes", name, dataset).float()
        src = full[:, STARGAN_COLUMNS]
        for k in range(len(L.STARGAN_CELEBA_ATTRIBUTES)):
            trg = stargan_targets(src, k)
            target = full.clone()
            target[:, STARGAN_COLUMNS] = trg
            yield dict(src=src, trg=trg, cls=torch.full((n,), k), keep=torch.ones(n, dtype=torch.bool),
                       edited=torch.full((n,), int(STARGAN_COLUMNS[k])), target_attrs=target,
                       gt={"attributes": target})
    else:  # aus, expression_aus
        src = _need(b, "aus", name, dataset).float()
        for j in range(donors.shape[1]):
            d = donors[idx, j]
            ok = d >= 0
            dd = d.clamp(min=0)
            trg, t_expr = aus_all[dd], torch.where(ok, expr_all[dd], torch.full_like(d, L.NO_EXPRESSION))
            if name == "aus":
                cls = torch.where(t_expr >= 0, t_expr, torch.full_like(t_expr, len(L.EXPRESSIONS)))
                keep = ok
            else:
                cls = torch.full((n,), j)
                keep = ok if include_source else ok & (src_expr != j)
            yield dict(src=src, trg=trg, cls=cls, keep=keep, target_expr=t_expr, target_aus=trg, gt={"aus": trg})


class OutputRange:
    """Watches an editor's outputs for images on another scale than its inputs' [-1, 1], which the harness
    used to clamp silently (an editor returning [0, 255] images scored a PSNR of 3 dB instead of 35).

    * A value beyond +-:attr:`FAR` (2) cannot be a [-1, 1] image: an error at once ([0, 255]-like).
    * Values beyond +-:attr:`TOLERANCE` (1.05; rounding, bf16) but within 2 are an overshoot, as an
      unclamped residual generator makes: clamped as before, but with one warning giving the range and
      the share of pixels clamped (``table.meta["output_range"]``, ``["clamped_share"]``).
    * [0, 1]-like: no output value below 0 (-0.02, for rounding) over the first :attr:`FACES` edits (or
      all, if fewer), while the inputs of those edits reach below -0.5 and the outputs span more than
      0.25: an error. A faithful editor keeps some of the dark pixels (pupils, hair, shadows) every face
      has; inputs that are all bright, or a collapsed, constant output, raise nothing.
    """

    TOLERANCE, FAR, FACES = 1.05, 2.0, 8

    def __init__(self, editor):
        self.name = getattr(editor, "__name__", None) or repr(editor)
        self.lo, self.hi, self.in_lo = math.inf, -math.inf, math.inf
        self.seen = self.pixels = self.clamped = 0
        self.decided = False  # the [0, 1] test is done (an output below 0 clears it)

    def __call__(self, y: torch.Tensor, x: torch.Tensor) -> None:
        lo, hi = float(y.min()), float(y.max())
        self.lo, self.hi, self.in_lo = min(self.lo, lo), max(self.hi, hi), min(self.in_lo, float(x.min()))
        self.seen, self.pixels = self.seen + len(y), self.pixels + y.numel()
        if hi > self.FAR or lo < -self.FAR:
            fix = ("These look like [0, 255] images: return y / 127.5 - 1" if lo >= -self.FAR else
                   "Map them to [-1, 1] (or end the network with tanh)")
            raise ValueError(f"the editor {self.name} returned values in [{lo:.3g}, {hi:.3g}]; the harness expects "
                             f"images in [-1, 1], like the ones it passes in. {fix}")
        if hi > self.TOLERANCE or lo < -self.TOLERANCE:
            self.clamped += int((y.abs() > 1).sum())
        if self.lo < -0.02:
            self.decided = True
        elif not self.decided and self.seen >= self.FACES:
            self.finish()

    def finish(self) -> None:
        """The [0, 1] test on what has been seen (at the latest after the last edit)."""
        if not self.decided and self.seen and self.lo >= -0.02 and self.in_lo < -0.5 and self.hi - self.lo > 0.25:
            raise ValueError(f"the editor {self.name} returned values in [{self.lo:.3f}, {self.hi:.3f}] over its "
                             f"first {self.seen} edits, never below 0, while its input images reach {self.in_lo:.2f}: "
                             f"it looks like it returns images in [0, 1]. The harness expects images in [-1, 1], like "
                             f"its inputs (measured as they are, a perfect edit in [0, 1] scores a PSNR of ~9 dB): "
                             f"return y * 2 - 1")
        self.decided = True

    def report(self) -> dict:
        """What goes into ``table.meta``; warns once when values beyond the tolerance were clamped."""
        share = self.clamped / max(self.pixels, 1)
        if self.clamped:
            warnings.warn(f"the editor {self.name} returned values in [{self.lo:.3f}, {self.hi:.3f}], beyond [-1, 1] "
                          f"on {share:.2%} of the pixels, which the harness clamped to [-1, 1] before measuring. If "
                          f"that is more than a small overshoot, fix the editor: end it with tanh or clamp its output "
                          f"(y.clamp(-1, 1))", stacklevel=3)
        return {"output_range": (self.lo, self.hi), "clamped_share": share}


def _run_editor(editor, x, src, trg, idx, amp: bool, device, watch: OutputRange) -> torch.Tensor:
    kwargs = {"indices": idx} if getattr(editor, "wants_indices", False) else {}
    with torch.no_grad(), autocast(device, enabled=amp):
        y = editor(x, src.to(device), trg.to(device), **kwargs)
    if not torch.is_tensor(y) or y.shape != x.shape:
        raise ValueError(f"the editor {editor!r} must return images of the input's shape {tuple(x.shape)}; got "
                         f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}")
    y = y.detach().float()
    if not torch.isfinite(y).all():
        raise ValueError(f"the editor {editor!r} returned non-finite pixels (nan or inf)")
    watch(y, x)
    return y.clamp(-1, 1)


def _per_edit(rec: dict, real: dict) -> dict:
    """What paired tests need (:mod:`faceedit_nb.claims`), one entry per edit in the canonical order (target
    by target, face by face): the face index, the hits behind EEA / attribute accuracy (``*_hit``; EEA
    only over edits with a known target), the per-edit distances, and the own features of the edits and
    of the real test images (for FID intervals), each edit's parser confusion against the ground truth's mask
    (``gt_confusion``, for mIoU intervals)."""
    out = {"face": rec["face"], "own": rec["own"], "real_own": real["own"]}
    if "target_expr" in rec:
        known = rec["target_expr"] >= 0
        out["eea_hit"] = rec["expr"][known].argmax(1) == rec["target_expr"][known]
        out["eea_face"] = rec["face"][known]
    if "attr" in rec:
        j = rec["edited"][:, None]
        out["attribute_accuracy_hit"] = ((rec["attr"].gather(1, j) > 0) == (rec["target_attrs"].gather(1, j) > 0.5)
                                         ).flatten()
    for key in ("id_distance", "acd", "ed", "gt_l1", "gt_ssim", "gt_confusion"):
        if key in rec and len(rec[key]) == len(rec["face"]):
            out[key] = rec[key]
    return out


def evaluate(editor, dataset, oracles, protocol: str = "expression", *, n: int | None = None,
             batch_size: int = 100, include_source: bool = True, n_targets: int = 7, seed: int = 0,
             features: str = "expression", inception=None, swav=None, parse: bool = True,
             kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10, amp: bool = True,
             device=None) -> EvalTable:
    """Translate the first ``n`` images of ``dataset`` to every target of ``protocol`` and measure.

    Args:
        editor: ``(images, source_labels, target_labels) -> images`` (see :mod:`.editors`).
        dataset: a test set whose samples have the protocol's labels (SynthFaces, or a real-data loader);
            the ground-truth metrics need ``render_targets`` (SynthFaces).
        oracles: the evaluation networks (:func:`faceedit_nb.oracles.load_oracles`).
        protocol: ``expression``, ``attributes``, ``stargan``, ``aus`` or ``expression_aus``
            (:data:`.protocols.PROTOCOLS`).
        include_source: expression protocols: also edit every image to its own expression.
        n_targets: AU protocol: random donor images per test image (7, as Ling et al.).
        seed: seeds the AU donors and the random subsets of KID and IS.
        features: own FID/KID features, ``"expression"`` or ``"identity"`` (:func:`own_features`).
        inception, swav: an Inception-v3 / SwAV network or a path to its weights
            (:mod:`.pretrained`) to add the papers' Inception FID/KID/IS and ssFID.
        parse: measure ``gt_miou`` with the parsing oracle (SynthFaces only).
        amp: run the editor and the oracles under autocast (bf16 on CPU).
    """
    P = get_protocol(protocol)
    device = torch.device(device) if device is not None else DEVICE
    N = len(dataset) if n is None else int(n)
    if not 1 <= N <= len(dataset):
        raise ValueError(f"n must lie in 1..{len(dataset)} (the data set's size); got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    _, feat_desc = own_features(oracles, features)
    expression_and_features = _expression_and_features(oracles, features)
    size = getattr(oracles, "size", None)
    if size is not None and tuple(_batch(dataset, torch.arange(1))["image"].shape[-2:]) != (size, size):
        raise ValueError(f"the oracles measure {size} x {size} images; the data set's are "
                         f"{tuple(_batch(dataset, torch.arange(1))['image'].shape[-2:])}. Load oracles at the "
                         f"data set's size (load_oracles(size=...)) or build the data set at {size} px")
    inc, sw = _as_net(inception, load_inception), _as_net(swav, load_swav)
    inc = inc.to(device) if inc is not None else None
    sw = sw.to(device) if sw is not None else None
    has_gt = hasattr(dataset, "render_targets")
    has_parser = getattr(oracles, "nets", {}).get("parser", 1) is not None  # Oracles without a parser: None
    use_parse = parse and has_gt and hasattr(oracles, "parse") and has_parser
    expression_targets = P.label in ("expression", "aus")
    attribute_targets = P.label in ("attributes", "stargan")
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    seconds = defaultdict(float)

    donors = aus_all = expr_all = None
    if P.label == "aus":
        donors, aus_all, expr_all = _donors(dataset, P, N, n_targets, batch_size, gen)

    def nets(x: torch.Tensor, edited: bool) -> dict:
        """Every oracle output needed for a batch, under autocast; float32 on the CPU."""
        t = time.perf_counter()
        out = {}
        with torch.no_grad(), autocast(device, enabled=amp):
            out["expr"], out["own"] = expression_and_features(x)
            out["emb"] = oracles.identity_embedding(x)
            if attribute_targets:
                out["attr"] = oracles.attribute_logits(x)
            if inc is not None:
                out["inc"] = inc(x)
                out["inc_logits"] = inc.net.fc(out["inc"])
            if sw is not None:
                out["swav"] = sw(x)
            if edited and use_parse:
                out["parse"] = oracles.parse(x)
            if edited and (P.label == "aus" or (P.name == "expression" and has_gt)):
                out["aus"] = oracles.aus(x)
        out = {k: v.float().cpu() for k, v in out.items()}
        seconds["oracles"] += time.perf_counter() - t
        return out

    real = defaultdict(list)
    rec = defaultdict(list)
    watch = OutputRange(editor)
    n_cls = len(P.classes)
    confusion = torch.zeros(n_cls, len(L.PARSING_CLASSES), len(L.PARSING_CLASSES), dtype=torch.long)
    for start in range(0, N, batch_size):
        idx = torch.arange(start, min(N, start + batch_size))
        t = time.perf_counter()
        b = _batch(dataset, idx)
        seconds["data"] += time.perf_counter() - t
        x = b["image"].float().to(device)
        r = nets(x, edited=False)
        for k in ("own", "expr", "inc", "inc_logits", "swav", "attr"):
            if k in r:
                real[k].append(r[k])
        if "expression" in b:
            real["expression"].append(b["expression"].long())
        if "attributes" in b and attribute_targets:
            real["attributes"].append(b["attributes"].float())
        # every (image, target) pair of this batch as one row; edited and measured batch_size rows at a time
        slots = list(_slots(P, b, idx, dataset, include_source, donors, aus_all, expr_all))
        keep = [s["keep"].nonzero().flatten() for s in slots]
        rows = {"pos": torch.cat(keep), "slot": torch.cat([torch.full((len(k),), j) for j, k in enumerate(keep)])}
        for key in slots[0]:
            if key not in ("keep", "gt"):
                rows[key] = torch.cat([s[key][k] for s, k in zip(slots, keep)])
        gt_key = next(iter(slots[0]["gt"]))
        rows["gt"] = torch.cat([s["gt"][gt_key][k] for s, k in zip(slots, keep)])
        src_expr_all = b["expression"].long() if "expression" in b else torch.full((len(idx),), L.NO_EXPRESSION)
        for lo in range(0, len(rows["pos"]), batch_size):
            c = {key: v[lo:lo + batch_size] for key, v in rows.items()}
            k = c["pos"]
            t = time.perf_counter()
            y = _run_editor(editor, x[k], c["src"], c["trg"], idx[k], amp, device, watch)
            seconds["editor"] += time.perf_counter() - t
            e = nets(y, edited=True)
            rec["order"].append(c["slot"] * N + idx[k])  # canonical row order, whatever the batch size
            rec["face"].append(idx[k])
            rec["cls"].append(c["cls"])
            rec["own"].append(e["own"])
            rec["expr"].append(e["expr"])
            rec["id_distance"].append(id_distance(e["emb"], r["emb"][k]))
            rec["acd"].append(average_content_distance(e["emb"], r["emb"][k]))
            for key in ("inc", "inc_logits", "swav"):
                if key in e:
                    rec[key].append(e[key])
            if "target_expr" in c:
                rec["target_expr"].append(c["target_expr"])
                rec["source_expr"].append(src_expr_all[k])
            if "target_attrs" in c:
                rec["attr"].append(e["attr"])
                rec["target_attrs"].append(c["target_attrs"])
                rec["edited"].append(c["edited"])
            if "target_aus" in c:
                rec["ed"].append(expression_distance(e["aus"], c["target_aus"]))
            if has_gt:
                t = time.perf_counter()
                g = dataset.render_targets(idx[k], **{gt_key: c["gt"]})
                y_cpu, g_img = y.cpu(), g["image"].float()
                rec["gt_l1"].append(l1_error(y_cpu, g_img))
                rec["gt_mse"].append(((y_cpu - g_img) / 2).square().flatten(1).mean(1))  # [0, 1] scale
                rec["gt_ssim"].append(ssim(y_cpu, g_img))
                if "target_attrs" in c:
                    j = c["edited"][:, None]  # the re-render shows the edited attribute as asked
                    shown = g["attributes"].gather(1, j) == c["target_attrs"].gather(1, j)
                    rec["gt_realised"].append(shown.flatten().float())
                if P.name == "expression":
                    rec["ed"].append(expression_distance(e["aus"], g["aus"].float()))
                if use_parse:
                    logits = e["parse"]
                    if logits.shape[-2:] != g["mask"].shape[-2:]:
                        logits = F.interpolate(logits, size=g["mask"].shape[-2:], mode="bilinear", align_corners=False)
                    per_edit = confusion_per_image(logits.argmax(1), g["mask"], len(L.PARSING_CLASSES))
                    rec["gt_confusion"].append(per_edit.int())  # per edit: the intervals of gt_miou
                    confusion.index_add_(0, c["cls"], per_edit)
                seconds["ground truth"] += time.perf_counter() - t

    watch.finish()
    real = {k: torch.cat(v) for k, v in real.items()}
    rec = {k: torch.cat(v) for k, v in rec.items()}
    order = rec.pop("order").argsort()  # target by target, image by image: KID / IS subsets do not
    rec = {k: v[order] for k, v in rec.items()}  # depend on the batch size
    # own features in units of their root mean square over the real test images (one constant, the same
    # for real and edited images): entries of order 1, as the KID kernel assumes and Inception's are
    own_scale = float(real["own"].square().mean().sqrt().clamp(min=1e-12))
    real["own"], rec["own"] = real["own"] / own_scale, rec["own"] / own_scale
    t = time.perf_counter()
    table = EvalTable()
    skipped = []
    cls = rec["cls"]
    count = torch.bincount(cls, minlength=n_cls)
    present = [c for c in range(n_cls) if count[c] > 0]

    def per_class_mean(key: str, metric: str):
        if key not in rec:
            return
        v = rec[key]
        for c in present:
            m = cls == c
            table.add(P.classes[c], metric, float(v[m].mean()), int(m.sum()))
        table.add("overall", metric, float(v.mean()), len(v))

    # classifier metrics
    if "target_expr" in rec:
        known = rec["target_expr"] >= 0
        if known.any():
            eea = expression_editing_accuracy(rec["expr"][known], rec["target_expr"][known])
            pres = expression_preservation_error(rec["expr"][known], rec["source_expr"][known],
                                                 rec["target_expr"][known])
            for c in present:
                if c < len(L.EXPRESSIONS) and eea.count[c] > 0:
                    table.add(P.classes[c], "eea", float(eea.per_class[c]), int(eea.count[c]))
            table.add("overall", "eea", eea.pooled, eea.n)
            if pres.n > 0:
                for c in present:
                    if c < len(L.EXPRESSIONS) and pres.count[c] > 0:
                        table.add(P.classes[c], "preservation_error", float(pres.per_class[c]), int(pres.count[c]))
                table.add("overall", "preservation_error", pres.pooled, pres.n)
            else:
                skipped.append("preservation_error: no edit with a known source expression different from the target")
    if "attr" in rec:
        acc = attribute_editing_accuracy(rec["attr"], rec["target_attrs"], rec["edited"])  # per column
        column = STARGAN_COLUMNS if P.name == "stargan" else torch.arange(len(L.ATTRIBUTES))
        for c in present:
            j = int(column[c])
            table.add(P.classes[c], "attribute_accuracy", float(acc.per_class[j]), int(acc.count[j]))
        table.add("overall", "attribute_accuracy", acc.mean, acc.n)
    per_class_mean("id_distance", "id_distance")
    per_class_mean("acd", "acd")
    per_class_mean("ed", "ed")

    # distribution metrics: real test images vs the edits of each class, and vs all edits pooled
    def distribution(key: str, fid_name: str, kid_name: str | None):
        if key not in rec:
            return
        fids = []
        for c in present:
            m = cls == c
            if m.sum() < 2:
                skipped.append(f"{fid_name} of class {P.classes[c]}: {int(m.sum())} edit(s), at least 2 needed")
                continue
            fids.append(frechet_distance(real[key], rec[key][m]))
            table.add(P.classes[c], fid_name, fids[-1], int(m.sum()))
            if kid_name:
                mean, std = kernel_distance(real[key], rec[key][m], kid_subsets, kid_subset_size, seed)
                table.add(P.classes[c], kid_name, mean, int(m.sum()), std)
        table.add("overall", fid_name, frechet_distance(real[key], rec[key]), len(rec[key]))
        if fids:
            table.add("overall", fid_name + "_class_mean", sum(fids) / len(fids), len(rec[key]))
        if kid_name:
            mean, std = kernel_distance(real[key], rec[key], kid_subsets, kid_subset_size, seed)
            table.add("overall", kid_name, mean, len(rec[key]), std)

    distribution("own", "fid_own", "kid_own")
    distribution("inc", "fid_inception", "kid_inception")
    distribution("swav", "ssfid", None)

    def inception_scores(key: str, metric: str):
        if key not in rec:
            return
        for where, logits in (("overall", rec[key]), ("real images", real[key])):
            if len(logits) < is_splits:
                skipped.append(f"{metric} of {where}: {len(logits)} images, fewer than {is_splits} splits")
                continue
            mean, std = inception_score_from_logits(logits, is_splits, seed)
            table.add(where, metric, mean, len(logits), std)

    inception_scores("expr", "is_own")
    inception_scores("inc_logits", "is_inception")

    # the classifiers on the unedited test images: the ceiling of the accuracies above
    if expression_targets and "expression" in real and (real["expression"] >= 0).any():
        known = real["expression"] >= 0
        acc = expression_editing_accuracy(real["expr"][known], real["expression"][known])
        table.add("real images", "eea", acc.pooled, acc.n)
    if attribute_targets and "attributes" in real:
        hits = (real["attr"] > 0) == (real["attributes"] > 0.5)
        cols = STARGAN_COLUMNS if P.name == "stargan" else torch.arange(len(L.ATTRIBUTES))
        table.add("real images", "attribute_accuracy", float(hits[:, cols].float().mean()), len(hits))

    # ground truth
    per_class_mean("gt_l1", "gt_l1")
    if "gt_mse" in rec:  # PSNR of the mean MSE: a mean of per-image PSNRs is inf once one edit is exact
        groups = [(P.classes[c], cls == c) for c in present] + [("overall", torch.ones_like(cls, dtype=torch.bool))]
        for where, m in groups:
            mse = rec["gt_mse"][m].double().mean()
            table.add(where, "gt_psnr", float(10 * torch.log10(1 / mse)), int(m.sum()))
    per_class_mean("gt_ssim", "gt_ssim")
    if use_parse:
        for c in present:
            table.add(P.classes[c], "gt_miou", float(iou_per_class(confusion[c]).nanmean()), int(count[c]))
        table.add("overall", "gt_miou", float(iou_per_class(confusion.sum(0)).nanmean()), len(cls))
    per_class_mean("gt_realised", "gt_realised")
    seconds["statistics"] += time.perf_counter() - t
    table.edits = _per_edit(rec, real)

    if P.name == "expression_aus":
        for e in range(len(L.EXPRESSIONS)):
            if (donors[:, e] < 0).all():
                skipped.append(f"{N} edits to {L.EXPRESSIONS[e]}: no test image shows it, so no AUs to copy")
    n_edits = len(cls)
    total = time.perf_counter() - t0
    table.meta = {
        "protocol": P.name, "protocol_summary": P.summary, "editor": getattr(editor, "__name__", repr(editor)),
        "n_images": N, "n_edits": n_edits, "include_source": include_source,
        "n_targets": n_targets if P.name == "aus" else None, "seed": seed,
        "own_features": feat_desc, "own_feature_scale": own_scale, "inception": None if inc is None else inc.flavour,
        "swav": sw is not None, "ground_truth": has_gt, "amp": amp, "device": str(device),
        "ed_reference": ("target AUs" if P.label == "aus" else
                         "ground-truth re-render's AUs" if P.name == "expression" and has_gt else None),
        "skipped": skipped, "seconds": dict(seconds, total=total), "edits_per_second": n_edits / total,
        **watch.report(),
    }
    return table
