"""The settings of SeCGAN (Sun et al., secgan.txt) on its two backbones, and the configs of the series.

A SeCGAN config is its backbone's config (:class:`faceedit_nb.papers.stargan.StarGANConfig` or
:class:`faceedit_nb.papers.attgan.AttGANConfig`) plus what the paper adds: the variant (baseline, + concat,
SeCGAN), the semantic consistency weight λ_sc, the frozen parser P and the training data. Every other field
(networks, λ_cls / λ_rec / λ_gp, optimiser, iterations) keeps the parent's default, which is the paper's:
"We follow the same training procedures and values for λ_cls, λ_rec, and λ_gp as the original
implementations" (Sec. 4.3). What the paper changes in the parents is set here: STGAN's difference
condition y_diff for both (Sec. 3.1), and AttGAN's learning rate decaying exponentially to 2e-6 over the
second half (Sec. 4.3; AttGAN's own code divides it by 10).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...methods import check_evaluation_data as _check_evaluation_data
from ..attgan import AttGANConfig
from ..stargan import StarGANConfig

__all__ = ["VARIANTS", "DATASETS", "SemanticSettings", "SeCGANStarGANConfig", "SeCGANAttGANConfig", "PARSER_KEYS",
           "parser_config", "PAPER_STATES", "OUR_CHOICES", "series_configs", "TABLE1", "check_evaluation_data"]

VARIANTS = ("baseline", "concat", "secgan")  # Table 1's three rows per backbone
DATASETS = ("synthfaces", "celeba", "celebahq", "rafd")

# Where each setting comes from: what the paper states, and what we chose where it is silent.
PAPER_STATES = {
    "condition": "y_diff = y_trg - y_src, STGAN's (Sec. 3.1), for both branches",
    "lambda_sc": "Figure 3: accuracy peaks at λ_sc = 0.01 (the value we read for Table 1)",
    "lambda_cls, lambda_rec, lambda_gp": "the original implementations' (Sec. 4.3)",
    "reconstruction": "G(x, 0) instead of StarGAN's cycle (Eq. 5, 10; Sec. 4.2)",
    "n_critic": "G every 5 D updates, both backbones (Sec. 4.3, Algorithm 1)",
    "StarGAN optimiser": "Adam 1e-4 (0.5, 0.999), batch 16, 200K iterations, linear decay to 0 over the last 100K",
    "AttGAN optimiser": "Adam 2e-4 (0.5, 0.999), batch 32, ~1.1M iterations (200 epochs), constant for 100 "
                        "epochs then exponential decay to 2e-6",
    "parser": "BiSeNet pre-trained on CelebAMask-HQ, per resolution, 12 segments, frozen (Sec. 3)",
}
OUR_CHOICES = {
    "parser": "the project's UNet (19 CelebAMask-HQ classes), its probabilities summed into the 12 segments",
    "parser data": "SynthFaces masks of other people (seed 1); CelebAMask-HQ's train split with parser_data_root",
    "classification loss": "the parents' (Eq. 3-4 and 8-9 as binary cross-entropy: the paper's '1 - log D' "
                           "is read as log(1 - D); cross-entropy over the 8 expressions, as StarGAN on RaFD)",
    "AttGAN schedule": "Algorithm 1 (both critics every iteration, generators every 5th on the same batch), "
                       "not AttGAN-PyTorch's alternation of batches",
    "D_seg of AttGAN": "the RGB critic's instance norm kept (Table 3 lists none; 'the only differences ... are "
                       "the number of channels')",
}


@dataclass
class SemanticSettings:
    """What SeCGAN adds to a backbone's config (mixed into both backbone configs)."""
    variant: str = "secgan"       # "baseline" (the backbone with y_diff and Eq. 5), "concat" (x and s_in
    #                               concatenated at G's input, Sec. 4.5), "secgan" (the two branches)
    lambda_sc: float = 0.01       # weight of the semantic consistency losses (Eq. 14, 16; Figure 3's best)
    # the frozen parser P (Sec. 3: BiSeNet on CelebAMask-HQ; ours: a UNet on SynthFaces masks)
    parser_width: int = 32        # UNet base width
    parser_masks: int = 24_183    # labelled faces (CelebAMask-HQ's train split has 24,183)
    parser_fraction: float = 1.0  # share of them used ("pre-training could be done at a small scale", Sec. 5)
    parser_steps: int = 80_000    # face-parsing.PyTorch's 80k iterations
    parser_batch: int = 16
    parser_lr: float = 2e-3       # AdamW with warm-up and poly decay (faceedit_nb.nets.parsing.train_parser)
    parser_data_seed: int = 1     # SynthFaces seed of the labelled faces: other people than the GAN's
    parser_data_root: str = ""    # a CelebAMask-HQ folder: pre-train P on its train split (the paper's)
    # the translation data (Sec. 4.1)
    dataset: str = "synthfaces"   # "synthfaces", or "celeba" / "celebahq" / "rafd" read from data_root
    data_root: str = ""

    def _check_semantic(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}; got {self.variant!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; got {self.dataset!r}")
        if self.dataset != "synthfaces" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} is read from disk: set data_root to its folder")
        if not 0 < self.parser_fraction <= 1:
            raise ValueError(f"parser_fraction must lie in (0, 1]; got {self.parser_fraction!r}")
        if self.lambda_sc < 0:
            raise ValueError(f"lambda_sc must be >= 0; got {self.lambda_sc!r}")
        if self.condition != "difference":
            raise ValueError("SeCGAN conditions both branches on y_diff (Sec. 3.1): condition must be 'difference'")

    @property
    def semantic(self) -> bool:
        """Whether the semantic branch (G_seg, D_seg) exists."""
        return self.variant == "secgan"

    @property
    def needs_parser(self) -> bool:
        return self.variant in ("concat", "secgan")


_PARSER_SMOKE = dict(parser_width=8, parser_masks=32, parser_steps=3, parser_batch=8)
_PARSER_CPU = dict(parser_width=16, parser_masks=4000, parser_steps=400, parser_lr=5e-3)


@dataclass
class SeCGANStarGANConfig(SemanticSettings, StarGANConfig):
    """SeCGAN on StarGAN (Table 2). Defaults: the paper's (StarGAN's own, y_diff, λ_sc = 0.01)."""
    domain: str = "attributes13"  # CelebA's 13 attributes (Table 1); "expression": the 8 RaFD expressions
    condition: str = "difference"

    # StarGAN's cpu recipe but its residual generator (G_seg's output is a distribution over 12 segments, not a
    # change of its input, and + Concat's input has 15 channels; all three variants keep one G) and its
    # projection critic (Eq. 1 and 6 are the paper's unconditional critics)
    _CPU = dict(StarGANConfig._CPU, g_residual=False, d_projection=False, curve_every=0, **_PARSER_CPU)
    _PAPER_CURVE_POINTS = 0  # its training measures no learning curve
    _SMOKE = dict(StarGANConfig._SMOKE, curve_every=0, **_PARSER_SMOKE)

    def __post_init__(self):
        StarGANConfig.__post_init__(self)
        self._check_semantic()
        if self.domain == "attributes":
            raise ValueError("SeCGAN uses the 13 attributes ('attributes13') or the 8 expressions ('expression')")
        if self.dataset == "rafd" and self.domain != "expression":
            raise ValueError("RaFD has expressions, not attributes: set domain='expression'")
        if self.dataset in ("celeba", "celebahq") and self.domain != "attributes13":
            raise ValueError(f"{self.dataset} has attributes: set domain='attributes13'")

    @property
    def n_critic_steps(self) -> int:
        return self.n_critic

    @property
    def total_steps(self) -> int:
        return self.num_iters


@dataclass
class SeCGANAttGANConfig(SemanticSettings, AttGANConfig):
    """SeCGAN on AttGAN (Table 3). Defaults: the paper's (AttGAN's own, y_diff, λ_sc = 0.01, lr to 2e-6)."""
    condition: str = "difference"
    lr_final: float = 2e-6        # the learning rate reached at the end (exponential decay from decay_epoch)

    _CPU = dict(AttGANConfig._CPU, curve_every=0, **_PARSER_CPU)
    _PAPER_CURVE_POINTS = 0  # its training measures no learning curve
    _SMOKE = dict(AttGANConfig._SMOKE, curve_every=0, **_PARSER_SMOKE)

    def __post_init__(self):
        self._check_semantic()
        if self.dataset == "rafd":
            raise ValueError("the paper trains AttGAN on CelebA only; RaFD's expressions need backbone='stargan'")

    @property
    def domain(self) -> str:
        return "attributes13"

    @property
    def protocol(self) -> str:
        return "attributes"

    @property
    def n_critic_steps(self) -> int:
        return self.n_d


PARSER_KEYS = ("image_size", "parser_width", "parser_masks", "parser_fraction", "parser_steps", "parser_batch",
               "parser_lr", "parser_data_seed", "parser_data_root", "seed", "version")


def parser_config(cfg) -> dict:
    """The settings that decide the frozen parser P: its cache key (shared by every model that uses it)."""
    return {k: getattr(cfg, k) for k in PARSER_KEYS}


# Table 1 of the paper (accuracy %, ssFID, IS): (data set, resolution, backbone, method) -> numbers
TABLE1 = {
    ("CelebA", 128, "StarGAN", "baseline"): (78.72, 1.58, 3.08),
    ("CelebA", 128, "StarGAN", "concat"): (80.50, 1.47, 3.04),
    ("CelebA", 128, "StarGAN", "secgan"): (82.79, 1.61, 3.07),
    ("CelebA", 128, "AttGAN", "baseline"): (82.85, 1.22, 2.94),
    ("CelebA", 128, "AttGAN", "concat"): (79.74, 1.20, 3.06),
    ("CelebA", 128, "AttGAN", "secgan"): (84.81, 1.27, 3.05),
    ("CelebA-HQ", 128, "StarGAN", "baseline"): (72.75, 3.22, 2.74),
    ("CelebA-HQ", 128, "StarGAN", "secgan"): (75.78, 3.51, 2.80),
    ("CelebA-HQ", 256, "StarGAN", "baseline"): (58.16, 4.97, 3.11),
    ("CelebA-HQ", 256, "StarGAN", "secgan"): (60.17, 4.91, 3.12),
    ("RaFD", 128, "StarGAN", "baseline"): (86.09, 0.92, 1.42),
    ("RaFD", 128, "StarGAN", "secgan"): (91.62, 0.94, 1.41),
}


def series_configs(profile: str, *, seed: int = 0, dataset: str = "synthfaces",
                   **overrides) -> dict[tuple[str, str, str], object]:
    """The models of Table 1 at a profile, keyed ``(domain, backbone, variant)``: StarGAN and AttGAN on the 13
    attributes (baseline, + concat, SeCGAN; the paper's CelebA rows) and StarGAN on the 8 expressions
    (baseline, SeCGAN; its RaFD rows). On SynthFaces all eight; ``dataset="celeba"`` / ``"celebahq"`` keeps
    the attribute rows, ``"rafd"`` the expression rows (``data_root`` in ``overrides``)."""
    out = {}
    overrides = dict(overrides, dataset=dataset)
    for variant in VARIANTS if dataset != "rafd" else ():
        out[("attributes13", "StarGAN", variant)] = SeCGANStarGANConfig.profile(
            profile, variant=variant, seed=seed, **overrides)
        out[("attributes13", "AttGAN", variant)] = SeCGANAttGANConfig.profile(
            profile, variant=variant, seed=seed, **overrides)
    for variant in ("baseline", "secgan") if dataset in ("synthfaces", "rafd") else ():
        out[("expression", "StarGAN", variant)] = SeCGANStarGANConfig.profile(
            profile, domain="expression", variant=variant, seed=seed, **overrides)
    return out


def check_evaluation_data(dataset: str, data_root: str = "") -> None:
    """03_ablations and 04_results refuse models trained on real data (:func:`faceedit_nb.methods.check_evaluation_data`)."""
    _check_evaluation_data(dataset, data_root, datasets=DATASETS,
                           needs="accuracy needs attribute and expression classifiers trained on that data set's own "
                                 "training split")
