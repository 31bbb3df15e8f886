"""The harness's result: one tidy table (a row per class, metric and figure) with a wide Markdown view."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["EvalTable", "METRIC_NAMES"]

# Column titles of the wide view (and the book's vocabulary for each metric key).
METRIC_NAMES = {
    "eea": "EEA", "preservation_error": "pres. error", "attribute_accuracy": "attr. acc.",
    "id_distance": "ID dist.", "acd": "ACD", "ed": "ED",
    "fid_own": "FID (own)", "fid_own_class_mean": "FID (own), class mean", "kid_own": "KID (own)",
    "is_own": "IS (own)",
    "fid_inception": "FID (Inception)", "fid_inception_class_mean": "FID (Inception), class mean",
    "kid_inception": "KID (Inception)", "is_inception": "IS (Inception)",
    "ssfid": "ssFID", "ssfid_class_mean": "ssFID, class mean",
    "gt_l1": "GT L1", "gt_psnr": "GT PSNR", "gt_ssim": "GT SSIM", "gt_miou": "GT mIoU",
    "gt_realised": "GT realised",
}
_COUNT_FROM = ("eea", "attribute_accuracy", "id_distance", "is_own", "is_inception")


def _fmt(v: float | None, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if abs(v) < 5e-7:  # rounding noise of a zero (FID, KID of identical sets); rows keep the exact value
        return format(0.0, floatfmt)
    if abs(v) < 0.01:
        return f"{v:.1e}"
    return format(v, floatfmt)


@dataclass
class EvalTable:
    """Tidy results of :func:`faceedit_nb.metrics.evaluate`.

    ``rows`` holds one dict per figure: ``class`` (a class name, ``"overall"`` or ``"real images"``),
    ``metric`` (a key of :data:`METRIC_NAMES`), ``value``, ``std`` (over subsets for KID and IS, else
    None) and ``n`` (the number of edits, or images, behind the figure). ``meta`` records the protocol,
    the editor, the networks behind each metric, the counts and the time taken.
    """

    rows: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    edits: dict = field(default_factory=dict, repr=False)  # per-edit tensors for paired tests (claims.py)

    def add(self, cls: str, metric: str, value: float, n: int, std: float | None = None) -> None:
        self.rows.append({"class": cls, "metric": metric, "value": float(value), "std": std, "n": int(n)})

    def _find(self, metric: str, cls: str) -> dict:
        for r in self.rows:
            if r["metric"] == metric and r["class"] == cls:
                return r
        raise KeyError(f"no {metric!r} figure for class {cls!r}; metrics: {self.metrics()}, classes: {self.classes()}")

    def value(self, metric: str, cls: str = "overall") -> float:
        """One figure, e.g. ``table.value("eea")`` or ``table.value("eea", "happy")``."""
        return self._find(metric, cls)["value"]

    def n(self, metric: str, cls: str = "overall") -> int:
        """The number of edits (or images) behind one figure."""
        return self._find(metric, cls)["n"]

    def get(self, metric: str, cls: str = "overall", default: float = float("nan")) -> float:
        try:
            return self.value(metric, cls)
        except KeyError:
            return default

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r["metric"] for r in self.rows))

    def classes(self) -> list[str]:
        return list(dict.fromkeys(r["class"] for r in self.rows))

    def wide(self, metrics: list[str] | None = None) -> list[dict]:
        """One dict per class: ``class``, ``n`` (edits in the class) and one entry per metric."""
        metrics = metrics or self.metrics()
        out = []
        for c in self.classes():
            row = {"class": c, "n": None}
            for r in self.rows:
                if r["class"] == c and r["metric"] in metrics:
                    row[r["metric"]] = r["value"]
            for m in _COUNT_FROM:
                if row["n"] is None and any(r["class"] == c and r["metric"] == m for r in self.rows):
                    row["n"] = self.n(m, c)
            out.append(row)
        return out

    def markdown(self, metrics: list[str] | None = None, floatfmt: str = ".3f") -> str:
        """The wide view as a Markdown table (classes down, metrics across)."""
        metrics = [m for m in (metrics or self.metrics()) if m in self.metrics()]
        head = ["class", "n"] + [METRIC_NAMES.get(m, m) for m in metrics]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for row in self.wide(metrics):
            cells = [row["class"], "" if row["n"] is None else str(row["n"])]
            cells += [_fmt(row.get(m), floatfmt) for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    to_markdown = markdown

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return (f"EvalTable(protocol={self.meta.get('protocol')!r}, editor={self.meta.get('editor')!r}, "
                f"{len(self.rows)} figures)")
