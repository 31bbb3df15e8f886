"""The papers' claims against our measurements: differences with intervals, and four honest verdicts.

Every chapter ends with one claims table (:func:`claims_table`), built from :class:`Claim` records::

    from faceedit_nb import claims as C
    d = C.eea_difference(tables["ours"], tables["StarGAN"])       # paired: both edited the same faces
    claim = C.Claim("ours above StarGAN in EEA (Table 1)", paper="+5.1 points", difference=d,
                    paper_effect=0.051)
    C.glue_claims([claim])                                          # claims_table + claims_json

A difference ``A - B`` is a :class:`Difference`: the estimate, a 95 % interval, its standard error and
the **detectable effect**, the smallest true difference the test would find (interval excluding 0) with
80 % probability at this n: ``(z_0.975 + z_0.8) * SE = 2.80 SE``. How it is measured:

* two models that edited **the same faces**: paired tests. EEA and other hit rates by McNemar's test on
  the discordant edits (:func:`paired_rate_difference`); means per edit (identity distance, ED) by a
  paired bootstrap over faces (:func:`paired_bootstrap`); FID by re-drawing faces and recomputing both
  FIDs on each draw (:func:`fid_difference`); a parser's mIoU paired per test face (:func:`miou_difference`);
* different faces: the two-proportion normal interval (:func:`rate_difference`);
* several training seeds: :func:`combine_seeds` (between-seed spread included).

:func:`verdict` has four outcomes, never two:

* **reproduced**: the difference has the paper's sign and its interval excludes 0;
* **contradicted**: the interval excludes 0 on the other side;
* **inconclusive**: the interval includes 0; the table states the detectable effect and whether the
  paper's own effect is above it (then a real effect of the paper's size would probably have shown);
* **not testable here**: our recipe or data cannot move the quantity (the claim says why), or a
  :class:`Premise` of the comparison failed when measured. A claim that one editor edits better than
  another presupposes that they edit at all: with ``premises=[C.edits_better_than_nothing(...)]`` a
  difference between two models that both do no better than the identity editor is shown, but it is
  not read as reproducing (or contradicting) the paper::

      p = C.edits_better_than_nothing(tables, ["ours", "GANimation"], tables["identity editor"], "ed")
      C.Claim("ours has a lower ED (Table 1)", "0.275 vs 0.313", d, better="lower", premises=[p])
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["Z95", "Z_POWER", "Difference", "rate_difference", "paired_rate_difference", "paired_bootstrap",
           "eea_difference", "metric_difference", "fid_difference", "fid_interval", "miou_difference", "combine_seeds",
           "verdict", "VERDICTS", "Premise", "edits_better_than_nothing", "Claim", "claims_table", "claims_records",
           "glue_claims"]

Z95 = 1.959964       # two-sided 95 % interval
Z_POWER = 0.841621   # 80 % power: the detectable effect is (Z95 + Z_POWER) standard errors
VERDICTS = ("reproduced", "contradicted", "inconclusive", "not testable here")


@dataclass(frozen=True)
class Difference:
    """An estimate of ``A - B`` with a 95 % interval ``[low, high]`` and the standard error behind it."""
    estimate: float
    low: float
    high: float
    se: float
    n: int                   # edits (or faces) behind it
    test: str                # how it was measured, e.g. "McNemar, 1,920 paired edits"
    p_value: float | None = None

    @property
    def detectable(self) -> float:
        """The smallest true |A - B| this test finds (interval excluding 0) with 80 % probability."""
        return (Z95 + Z_POWER) * self.se

    def scaled(self, k: float) -> "Difference":
        """The same difference in other units (``k = 100``: points of a rate)."""
        lo, hi = sorted((self.low * k, self.high * k))
        return replace(self, estimate=self.estimate * k, low=lo, high=hi, se=self.se * abs(k))

    def __str__(self) -> str:
        return f"{self.estimate:+.3g} [{self.low:+.3g}, {self.high:+.3g}]"


def _normal(estimate: float, se: float, n: int, test: str) -> Difference:
    p = math.erfc(abs(estimate) / (se * math.sqrt(2))) if se > 0 else (1.0 if estimate == 0 else 0.0)
    return Difference(estimate, estimate - Z95 * se, estimate + Z95 * se, se, n, test, p)


def rate_difference(p1: float, n1: int, p2: float, n2: int) -> Difference:
    """``p1 - p2`` of two rates measured on different samples (``n1`` and ``n2`` trials), with the
    two-proportion normal interval. For edits of the same faces use :func:`paired_rate_difference`."""
    if n1 < 1 or n2 < 1:
        raise ValueError(f"need at least one trial on each side; got n1={n1}, n2={n2}")
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be a rate in [0, 1]; got {p!r}")
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return _normal(p1 - p2, se, min(n1, n2), f"two proportions, n = {n1:,} and {n2:,}")


def _as_bool(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 1 or len(t) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of hits (bool per edit); got shape "
                         f"{tuple(t.shape)}")
    return t.bool()


def paired_rate_difference(hits_a, hits_b) -> Difference:
    """Hit rate of A minus that of B on the **same** edits (``hits_*``: bool per edit, same order):
    McNemar's test. Only the discordant edits (``b``: A right, B wrong; ``c``: the reverse) carry
    information. The interval is Agresti and Min's adjusted Wald interval of the paired difference (half an
    edit added to each of the four cells, ``SE = sqrt(b' + c' - (b' - c')^2 / n') / n'``), which keeps its
    coverage when few edits disagree; with none it still has a width, set by ``n``."""
    a, b = _as_bool(hits_a, "hits_a"), _as_bool(hits_b, "hits_b")
    if a.shape != b.shape:
        raise ValueError(f"paired hits must be of the same edits: {len(a)} vs {len(b)} edits")
    n = len(a)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    d = (only_a - only_b) / n
    ba, bb, nn = only_a + 0.5, only_b + 0.5, n + 2
    d_adj = (ba - bb) / nn
    se = math.sqrt(max(ba + bb - (ba - bb) ** 2 / nn, 0.0)) / nn
    out = Difference(d, d_adj - Z95 * se, d_adj + Z95 * se, se, n,
                     f"McNemar, {n:,} paired edits ({only_a} + {only_b} discordant)")
    if only_a + only_b > 0:  # McNemar's chi-square with continuity correction (1 dof)
        chi2 = max(abs(only_a - only_b) - 1, 0) ** 2 / (only_a + only_b)
        out = replace(out, p_value=math.erfc(math.sqrt(chi2 / 2)))
    return out


def paired_bootstrap(values_a, values_b, *, clusters=None, statistic: Callable = None, n_boot: int = 1000,
                     seed: int = 0, test: str = "") -> Difference:
    """``statistic(values_a) - statistic(values_b)`` (default: the mean) with a percentile interval from
    ``n_boot`` resamples of the clusters (``clusters``: a face index per value, so that the edits of one
    face are drawn together; default: each value its own cluster). Both sides are resampled with the
    same draw: the pairing is kept."""
    a = torch.as_tensor(values_a, dtype=torch.float64).flatten()
    b = torch.as_tensor(values_b, dtype=torch.float64).flatten()
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"paired values must be non-empty and of the same edits: {len(a)} vs {len(b)}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval; got {n_boot}")
    stat = statistic or (lambda v: float(v.mean()))
    groups = torch.arange(len(a)) if clusters is None else torch.as_tensor(clusters).flatten()
    if groups.shape != a.shape:
        raise ValueError(f"clusters must give one face per value: {len(groups)} vs {len(a)}")
    ids, inverse = groups.unique(return_inverse=True)
    members = [torch.nonzero(inverse == k).flatten() for k in range(len(ids))]
    gen = torch.Generator().manual_seed(seed)
    est = stat(a) - stat(b)
    draws = np.empty(n_boot)
    for r in range(n_boot):
        pick = torch.cat([members[k] for k in torch.randint(len(ids), (len(ids),), generator=gen).tolist()])
        draws[r] = stat(a[pick]) - stat(b[pick])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Difference(est, float(lo), float(hi), float(draws.std(ddof=1)), len(a),
                      test or f"paired bootstrap over {len(ids):,} faces ({n_boot} draws)",
                      float(min(1.0, 2 * min((draws <= 0).mean(), (draws >= 0).mean()))))


def _edits(table, key: str) -> torch.Tensor:
    edits = getattr(table, "edits", None) or {}
    if key not in edits:
        raise KeyError(f"the table has no per-edit {key!r} (evaluate() records {sorted(edits)}); "
                       "re-run faceedit_nb.metrics.evaluate")
    return edits[key]


def _same_edits(a, b, key: str) -> bool:
    ea, eb = getattr(a, "edits", None) or {}, getattr(b, "edits", None) or {}
    return (key in ea and key in eb and "face" in ea and "face" in eb and ea["face"].shape == eb["face"].shape
            and bool((ea["face"] == eb["face"]).all()) and a.meta.get("protocol") == b.meta.get("protocol"))


def eea_difference(a, b, *, metric: str = "eea") -> Difference:
    """EEA (or ``attribute_accuracy``) of evaluation table ``a`` minus ``b``: McNemar's paired test when
    both edited the same faces to the same targets, else the two-proportion interval."""
    hits = f"{metric}_hit"
    if _same_edits(a, b, hits):
        return paired_rate_difference(_edits(a, hits), _edits(b, hits))
    return rate_difference(a.value(metric), a.n(metric), b.value(metric), b.n(metric))


def metric_difference(a, b, metric: str, *, n_boot: int = 1000, seed: int = 0) -> Difference:
    """A per-edit mean (``id_distance``, ``acd``, ``ed``, ``gt_l1``...) of table ``a`` minus ``b``, by a
    paired bootstrap over faces; the two tables must come from the same faces and protocol."""
    if not _same_edits(a, b, metric):
        raise ValueError(f"{metric}: the two evaluations did not edit the same faces to the same targets "
                         "(evaluate both editors on one test set with one protocol and seed)")
    return paired_bootstrap(_edits(a, metric), _edits(b, metric), clusters=_edits(a, "face"), n_boot=n_boot,
                            seed=seed)


def _fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance of two feature sets (float64, eigenvalues of S_r S_f for the matrix root)."""
    mu = real.mean(0) - fake.mean(0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    eig = np.linalg.eigvals(s_r @ s_f)
    root = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(mu @ mu + np.trace(s_r) + np.trace(s_f) - 2 * root)


def _fid_bootstrap(table, others: Sequence, n_boot: int, seed: int) -> tuple[float, np.ndarray]:
    """FID (own features) of ``table`` minus each of ``others``' (0 for none: the FID itself), over all faces
    and over ``n_boot`` re-draws of the test faces (each draw takes the real images and every table's edits of
    the same faces, and recomputes the FIDs)."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval; got {n_boot}")
    face = _edits(table, "face").numpy()
    real = _edits(table, "real_own").double().numpy()
    fakes = [_edits(t, "own").double().numpy() for t in (table, *others)]
    n_faces = len(real)
    rows = [np.nonzero(face == k)[0] for k in range(n_faces)]

    def stat(r, fs):
        return _fid(r, fs[0]) - sum(_fid(r, f) for f in fs[1:])

    est = stat(real, fakes)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for r in range(n_boot):
        pick = rng.integers(0, n_faces, n_faces)
        edits = np.concatenate([rows[k] for k in pick])
        draws[r] = stat(real[pick], [f[edits] for f in fakes])
    return est, draws


def fid_difference(a, b, *, n_boot: int = 200, seed: int = 0) -> Difference:
    """FID (own features) of table ``a`` minus ``b`` with a percentile interval from re-drawing the test
    faces: each draw takes the real images and both models' edits of the same faces, and recomputes both
    FIDs. The estimate is that of all faces (equal to the tables' ``fid_own`` up to rounding)."""
    if not _same_edits(a, b, "own"):
        raise ValueError("fid_difference: the two evaluations did not edit the same faces (evaluate both "
                         "editors on one test set with one protocol and seed)")
    est, draws = _fid_bootstrap(a, [b], n_boot, seed)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Difference(est, float(lo), float(hi), float(draws.std(ddof=1)), len(_edits(a, "own")),
                      f"bootstrap over {len(_edits(a, 'real_own')):,} faces ({n_boot} draws), both FIDs recomputed",
                      float(min(1.0, 2 * min((draws <= 0).mean(), (draws >= 0).mean()))))


def fid_interval(table, *, n_boot: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """FID (own features) of one evaluation with a 95 % interval from re-drawing the test faces (the same
    draws as :func:`fid_difference`): ``(estimate, low, high)``. A re-drawn set repeats faces, which alone
    raises a FID (most for editors near the real images: a ground-truth FID of 0.7 re-draws to 0.8-4.4), so
    the draws are first moved by their mean's distance from the estimate (a bias-corrected percentile
    interval); a FID is never below 0, the only bound applied."""
    est, draws = _fid_bootstrap(table, [], n_boot, seed)
    lo, hi = np.percentile(draws - (draws.mean() - est), [2.5, 97.5])
    return est, max(float(lo), 0.0), float(hi)


def miou_difference(a: dict, b: dict) -> Difference:
    """mIoU of parser report ``a`` minus ``b`` (reports of ``parser_miou`` on the same test faces), paired
    per face: the interval of the mean of the per-face differences (a normal interval; faces are many)."""
    if (a.get("n_test"), a.get("seed"), a.get("data")) != (b.get("n_test"), b.get("seed"), b.get("data")):
        raise ValueError("the two mIoU reports are on different test faces: measure both with the same data, "
                         "n and seed")
    fa, fb = torch.as_tensor(a["per_face_miou"]), torch.as_tensor(b["per_face_miou"])
    if fa.shape != fb.shape or len(fa) < 2:
        raise ValueError(f"paired mIoU needs the same test faces in both reports (>= 2); got {len(fa)} and {len(fb)}")
    diff = fa.double() - fb.double()
    se = float(diff.std(unbiased=True)) / math.sqrt(len(diff))
    return _normal(float(a["miou"]) - float(b["miou"]), se, len(diff), f"paired over {len(diff):,} test faces")


def combine_seeds(diffs: Sequence[Difference]) -> Difference:
    """One difference from runs with different training seeds: the mean estimate; its SE combines the
    spread between seeds and the runs' own SEs, ``sqrt((s_between^2 + mean(se_i^2)) / k)``."""
    diffs = list(diffs)
    if not diffs:
        raise ValueError("combine_seeds needs at least one run")
    if len(diffs) == 1:
        return diffs[0]
    est = np.array([d.estimate for d in diffs])
    within = np.mean([d.se ** 2 for d in diffs])
    se = math.sqrt((est.var(ddof=1) + within) / len(diffs))
    return _normal(float(est.mean()), se, sum(d.n for d in diffs), f"{len(diffs)} seeds ({diffs[0].test})")


def verdict(difference: Difference | None, *, better: str = "higher", testable: bool = True) -> str:
    """The verdict on a claim "A is better than B" from the difference ``A - B`` (``better``: whether the
    paper says A is higher or lower): one of :data:`VERDICTS`."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower'; got {better!r}")
    if not testable or difference is None:
        return "not testable here"
    if not all(math.isfinite(v) for v in (difference.estimate, difference.low, difference.high)):
        return "not testable here"
    low, high = (difference.low, difference.high) if better == "higher" else (-difference.high, -difference.low)
    if low > 0:
        return "reproduced"
    if high < 0:
        return "contradicted"
    return "inconclusive"


@dataclass(frozen=True)
class Premise:
    """What a claim's comparison presupposes, and whether it held when measured."""
    statement: str      # e.g. "ours and GANimation edit better than doing nothing"
    holds: bool
    evidence: str       # the measurement, e.g. "ed: ours 1.85, +0.24 [+0.22, +0.26] to doing nothing; ...; doing
    #                     nothing 1.6"


def edits_better_than_nothing(tables: dict, names: Sequence[str], nothing, metric: str, *, better: str = "lower",
                              difference: Callable | None = None) -> Premise:
    """Whether every editor in ``names`` edits measurably better than doing nothing on ``metric``: its paired
    difference to ``nothing`` (the identity editor's table, on the same edits) is "reproduced" in the
    ``better`` direction. ``difference(a, b)`` measures it (default :func:`metric_difference`; pass
    :func:`eea_difference` for a hit rate)."""
    measure = difference or (lambda a, b: metric_difference(a, b, metric))
    parts, holds = [], True
    for name in names:
        d = measure(tables[name], nothing)
        holds &= verdict(d, better=better) == "reproduced"
        parts.append(f"{name} {tables[name].value(metric):.3g}, {d} to doing nothing")
    evidence = f"{metric}: {'; '.join(parts)}; doing nothing {nothing.value(metric):.3g}"
    verb = "edits" if len(names) == 1 else "edit"
    return Premise(f"{' and '.join(names)} {verb} better than doing nothing", bool(holds), evidence)


@dataclass
class Claim:
    """One claim of a paper and our measurement of it.

    ``difference`` is ours (A - B, in the units of ``unit`` after ``scale``); ``paper_effect`` is the
    paper's A - B in the same units as our scaled difference (None when the paper gives no number);
    ``reason`` says why a claim is not testable here (required then)."""
    claim: str
    paper: str                      # the paper's figure as the paper reports it, e.g. "+5.1 points (RaFD)"
    difference: Difference | None = None
    better: str = "higher"
    scale: float = 1.0              # 100: a rate shown in points
    unit: str = ""
    paper_effect: float | None = None
    seeds: int = 1
    testable: bool = True
    reason: str = ""
    notes: list = field(default_factory=list)
    premises: Sequence[Premise] = ()  # measured preconditions; one that fails makes the claim not testable here

    def __post_init__(self):
        if not self.testable and not self.reason:
            raise ValueError(f"claim {self.claim!r} is marked not testable: say why (reason=...)")
        if self.better not in ("higher", "lower"):
            raise ValueError(f"better must be 'higher' or 'lower'; got {self.better!r}")

    @property
    def ours(self) -> Difference | None:
        return None if self.difference is None else self.difference.scaled(self.scale)

    @property
    def failed_premises(self) -> list[Premise]:
        return [p for p in self.premises if not p.holds]

    @property
    def verdict(self) -> str:
        return verdict(self.difference, better=self.better, testable=self.testable and not self.failed_premises)

    def _fmt(self, v: float, signed: bool = True) -> str:
        spec = ("+" if signed else "") + (".2f" if self.scale == 100 else ".3g")
        return format(v, spec)

    def _missing_measurement(self) -> str:
        """Why a claim marked testable has no verdict: the run gave no difference, or not a finite one."""
        if self.difference is None:
            return "no difference was measured (the run that would test it did not produce one)"
        return (f"the measured difference is not finite (estimate {self.difference.estimate}, interval "
                f"[{self.difference.low}, {self.difference.high}])")

    def verdict_text(self) -> str:
        v = self.verdict
        if v == "not testable here" and self.testable and self.failed_premises:
            failed = "; ".join(f"the premise \"{p.statement}\" fails ({p.evidence})" for p in self.failed_premises)
            return f"not testable here: {failed}, so the difference is no evidence either way"
        if v == "not testable here":
            return f"not testable here: {self.reason or self._missing_measurement()}"
        if v != "inconclusive":
            return v
        d = self.ours
        if self.paper_effect is None:
            return (f"inconclusive (an effect under {self._fmt(d.detectable, False)}{self.unit} would likely go "
                    "unseen)")
        where = "above" if abs(self.paper_effect) >= d.detectable else "below"
        return (f"inconclusive (the paper's {self.paper_effect:+.3g}{self.unit} is {where} the detectable "
                f"{self._fmt(d.detectable, False)}{self.unit})")

    def record(self) -> dict:
        d = self.ours
        return {"claim": self.claim, "paper": self.paper,
                "ours": "–" if d is None else (f"{self._fmt(d.estimate)}{self.unit} "
                                               f"[{self._fmt(d.low)}, {self._fmt(d.high)}]"),
                "detectable": "–" if d is None else f"{self._fmt(d.detectable, False)}{self.unit}",
                "verdict": self.verdict, "verdict_text": self.verdict_text(), "seeds": self.seeds,
                "test": "–" if d is None else d.test,
                "premises": [{"statement": p.statement, "holds": p.holds, "evidence": p.evidence}
                             for p in self.premises]}


def claims_records(claims: Sequence[Claim]) -> list[dict]:
    return [c.record() for c in claims]


def claims_table(claims: Sequence[Claim]):
    """The chapter's claims table: claim | paper's figure | ours (95 % interval) | detectable effect |
    verdict | seeds, as Markdown (:func:`faceedit_nb.viz.markdown_table`)."""
    from .viz import markdown_table
    rows = [(r["claim"], r["paper"], r["ours"], r["detectable"], r["verdict_text"], r["seeds"])
            for r in claims_records(claims)]
    return markdown_table(rows, ["claim", "paper's figure", "ours (95 % interval)", "detectable effect",
                                 "verdict", "seeds"])


def glue_claims(claims: Sequence[Claim], prefix: str = "") -> object:
    """Glue the claims table (``claims_table``), its records as JSON (``claims_json``, read by the claims
    overview page) and, with ``prefix``, each verdict (``<prefix>_verdict_<i>``) and the counts per
    outcome (``<prefix>_n_<outcome>``); returns the table for display."""
    from myst_nb import glue
    table = claims_table(claims)
    glue("claims_table", table, display=False)
    glue("claims_json", json.dumps(claims_records(claims), ensure_ascii=False), display=False)
    if prefix:
        for i, c in enumerate(claims):
            glue(f"{prefix}_verdict_{i}", c.verdict, display=False)
        for v in VERDICTS:
            glue(f"{prefix}_n_{v.split()[0]}", sum(c.verdict == v for c in claims), display=False)
        glue(f"{prefix}_n_claims", len(claims), display=False)
    return table
