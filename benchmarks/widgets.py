"""Update latency of each interactive editor of faceedit_nb.widgets: what one control change costs, the
model's forward pass and the drawing of the PNG the widget shows (the bar: under a second on a CPU at 64 px).

    python benchmarks/widgets.py                      # the cpu profile's networks (64 px), 1 thread, 5 updates each
    python benchmarks/widgets.py --profile smoke --updates 3
    python benchmarks/widgets.py --trained            # the chapters' trained models (trains any that is not cached)

Each widget is built over the network its chapter uses, at the profile's settings, and driven without a
front end: a control's value is set in Python, which runs the same callback a slider move or a toggle click
runs in Jupyter. Untrained networks (the default) cost exactly what trained ones do: the weights' values do not
change the arithmetic. Printed per widget: the median and the largest update (model + drawing), and the model's
forward pass alone (the state function, median).
"""
from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from faceedit_nb import widgets as Wd  # noqa: E402
from faceedit_nb.data import SynthFaces  # noqa: E402
from faceedit_nb.papers import attgan as AT  # noqa: E402
from faceedit_nb.papers import defgan as DG  # noqa: E402
from faceedit_nb.papers import ganimation as GA  # noqa: E402
from faceedit_nb.papers import relative_au as R  # noqa: E402
from faceedit_nb.papers import secgan as S  # noqa: E402
from faceedit_nb.papers import stargan as SG  # noqa: E402


def models(profile: str, trained: bool) -> dict:
    """Each chapter's editor (the DefGAN generator) at ``profile``: built, or loaded with ``trained``."""
    ga = GA.chapter_configs(profile)["GANimation"]
    ra = R.series_configs(profile)["ours"]
    sg = SG.chapter_configs(profile)["attributes13"]
    at = AT.chapter_configs(profile)["AttGAN"]
    se = S.series_configs(profile)[("attributes13", "StarGAN", "secgan")]
    dg = DG.series_configs(profile)["DefGAN"]
    if trained:
        return {"ganimation": GA.load_ganimation(ga).editor, "relative_au": R.load_relative_au(ra).editor,
                "stargan": SG.load_stargan(sg).editor, "attgan": AT.load_attgan(at).editor,
                "secgan": S.load_secgan(se).editor, "defgan": DG.trained_generator(DG.load_defgan(dg)),
                "size": ga.image_size}
    return {"ganimation": GA.ganimation_editor(GA.build_ganimation(ga)["G"].eval(), ga),
            "relative_au": R.relative_au_editor(R.build_relative_au(ra)["G"].eval(), ra),
            "stargan": SG.stargan_editor(SG.build_stargan(sg)["G"].eval(), sg),
            "attgan": AT.attgan_editor(AT.build_attgan(at)["G"].eval(), at),
            "secgan": S.secgan_editor({k: v.eval() for k, v in S.build_secgan(se).items()}, se),
            "defgan": DG.build_defgan(dg)["G"].eval(), "size": ga.image_size}


def widgets(m: dict) -> dict:
    """``{label: (widget, [control changes])}``: each change is ``(control, value)``."""
    size = m["size"]
    au = SynthFaces("test", size=size, n=8, n_identities=2, seed=0, au_mode="mixed").batch(torch.tensor([3]))
    at = SynthFaces("test", size=size, n=8, n_identities=2, seed=0).batch(torch.tensor([3]))
    x, aus, attrs = au["image"][0], au["aus"][0], at["attributes"][0]
    moves = [("AU12", 0.9), ("AU04", 0.7), ("AU26", 1.0), ("AU12", 0.1), ("AU04", 0.0)]
    rel = [("AU12", 0.6), ("AU04", -0.4), ("AU26", 0.8), ("AU12", -0.2), ("AU04", 0.3)]
    alphas = [("alpha", a) for a in (0.25, 0.5, 0.75, 1.0, 0.1)]
    toggles = [(n, v) for n in ("Bangs", "Eyeglasses", "Male") for v in (True, False)][:5]
    dg = [("AU26", 1.0), ("AU04", 0.8), ("AU05", 0.9), ("AU14", 0.6), ("AU26", 0.2)]
    return {
        "GANimation: AU sliders": (Wd.au_sliders(m["ganimation"], x, aus), moves),
        "Ling et al.: AU sliders (v_rel)": (Wd.au_sliders(m["relative_au"], x, aus, relative=True), rel),
        "Ling et al.: interpolation (Eq. 2)": (Wd.expression_interpolation(m["relative_au"], x, aus), alphas),
        "StarGAN (13 attributes): toggles": (Wd.attribute_toggles(m["stargan"], at["image"][0], attrs), toggles),
        "AttGAN: toggles": (Wd.attribute_toggles(m["attgan"], at["image"][0], attrs), toggles),
        "SeCGAN (StarGAN): toggles": (Wd.attribute_toggles(m["secgan"], at["image"][0], attrs), toggles),
        "DefGAN: deformation grid": (Wd.deformation_grid(m["defgan"], x, aus), dg),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="the chapters' model settings (cpu: 64 px)")
    ap.add_argument("--updates", type=int, default=5, help="control changes timed per widget (at most 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--trained", action="store_true", help="the chapters' trained models (from the model cache)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    m = models(args.profile, args.trained)
    print(f"profile {args.profile}, {m['size']} px, {args.threads} thread(s), {args.updates} updates per widget, "
          f"{'trained' if args.trained else 'untrained (same cost)'} networks")
    print(f"{'widget':38s} {'update median':>14s} {'update max':>11s} {'model only':>11s}")
    worst = 0.0
    for label, (w, changes) in widgets(m).items():
        updates, forward = [], []
        for name, value in changes[:args.updates]:
            w.controls[name].value = value  # runs the widget's callback: the state function, then the drawing
            updates.append(w.seconds)
            start = time.perf_counter()
            w._state()
            forward.append(time.perf_counter() - start)
        worst = max(worst, max(updates))
        print(f"{label:38s} {1000 * statistics.median(updates):11.0f} ms {1000 * max(updates):8.0f} ms "
              f"{1000 * statistics.median(forward):8.0f} ms")
    print(f"slowest update: {1000 * worst:.0f} ms ({'within' if worst < 1 else 'OVER'} the 1 s bar)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
