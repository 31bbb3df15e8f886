"""The settings of Ling et al.'s relative-AU editor (:class:`RelativeAUConfig`, a GANimation config that
overrides only what the paper changes) and the configs of the series' models (:func:`series_configs`), in
one place so that every chapter asks the cache for the same models.

Where each value comes from: :data:`PAPER_STATES` (relative-au-msf.txt, Sec. 3-4), :data:`CODE_STATES`
(``junleen/Expression-manipulator``'s ``train.sh`` and loaders where the paper is silent) and
:data:`OUR_CHOICES` (where both are silent, or where SynthFaces differs from AffectNet).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ...methods import check_evaluation_data as _check_evaluation_data
from ..ganimation import GANimationConfig

__all__ = ["GENERATORS", "CONDITIONS", "DATASETS", "RelativeAUConfig", "config_for", "from_ganimation",
           "ganimation_config", "SERIES", "MSF_ROWS", "series_configs", "PAPER_STATES", "CODE_STATES",
           "OUR_CHOICES", "check_evaluation_data"]

GENERATORS = ("unet_msf", "ganimation")   # Fig. 3's U-Net with MSF modules, or GANimation's generator
CONDITIONS = ("relative", "absolute")     # v_rel = v_tgt - v_src (Eq. 1), or the absolute target v_tgt
DATASETS = ("synthfaces", "openface", "affectnet")

PAPER_STATES = {
    "condition": "relative AUs v_rel = v_tgt - v_src (Eq. 1)",
    "k_msf": "3 MSF modules in the full model (Table 1: 0, 1, 2 as ablations)",
    "image_size": "128 x 128 crops (Sec. 4.1)",
    "lambda_D_cond": "λ1 = 150 (Eq. 8)", "lambda_G_cond": "λ2 = 150 (Eq. 9)",
    "lambda_rec": "λ3 = 30 (Eq. 9, on both terms of Eq. 7)", "lambda_tv": "λ4 = 5e-6 (Eq. 9)",
    "train_G_every_n_iterations": "one G step per four D steps", "lr_G": "Adam 1e-4, betas (0.5, 0.999)",
    "nepochs_no_decay": "30 epochs at 1e-4", "lr_final": "then linear decay to 1e-5",
    "discriminator": "GANimation's (six 4x4 stride-2 convs, 3x3 critic head, AU regression head)",
}
CODE_STATES = {
    "nepochs_decay": "20 decay epochs (train.sh)", "batch_size": "16 (train.sh)",
    "lambda_cyc": "l_cyc 30 (train.sh; the paper's λ3 covers both terms of Eq. 7)",
    "lambda_D_gp": "10, its own critic step (train.sh)", "real_noise": "real AUs + U(-0.02, 0.02)",
    "target_noise": "targets: a random sample's AUs + U(-0.1, 0.1)", "flip": "random flips",
    "g_conv_dim": "ngf = 64", "d_conv_dim": "ndf = 64",
    "au_mse": "GANimation's MSE / batch (Expression-manipulator is a fork of its code)",
}
OUR_CHOICES = {
    "crop": "no Pad 8 + RandomCrop (SynthFaces faces are already centred)",
    "n_train": "3,200 SynthFaces faces, AU mode 'mixed' (AffectNet: 200,000)",
    "lambda_smooth": "λ4 = 5e-6 (the paper) rather than train.sh's 1e-5",
}


@dataclass
class RelativeAUConfig(GANimationConfig):
    """Ling et al. (ECCV 2020) on SynthFaces. A :class:`GANimationConfig` whose defaults are the paper's
    (Sec. 4.1) where it changes GANimation's; inherited fields keep GANimation's meaning. ``generator=
    "ganimation"`` with ``condition="relative"`` is the paper's "GANimation w/ v_rel" (GANimation's networks,
    losses and weights, fed relative AUs: build it with :func:`from_ganimation`)."""
    # what the paper changes
    generator: str = "unet_msf"   # "unet_msf" (Fig. 3) or "ganimation" (GANimation's G, for its v_rel row)
    condition: str = "relative"   # "relative": G gets v_rel (Eq. 1); "absolute": v_tgt ("ours w/o v_rel")
    k_msf: int = 3                # MSF modules on the skips, from the lowest resolution up (0: a plain U-Net)
    g_conv_dim: int = 64          # ngf: the stem's width; the encoder goes 2x, 4x, 8x, 8x
    # loss weights of Eq. 8-9 (GANimation's names where it has the term)
    lambda_D_cond: float = 150.0  # λ1: AU regression of real images (Eq. 5)
    lambda_G_cond: float = 150.0  # λ2: AU regression of edits (Eq. 6)
    lambda_rec: float = 30.0      # λ3: self-reconstruction G(x, 0) (Eq. 7, first term)
    lambda_cyc: float = 30.0      # λ3: cycle G(G(x, v_rel), -v_rel) (Eq. 7, second term)
    lambda_tv: float = 5e-6       # λ4: total variation of the edited image (summed, as GANimation's TV)
    real_noise: float = 0.02      # the real AUs the critic regresses and the source of v_rel: + U(-0.02, 0.02)
    # optimisation
    batch_size: int = 16
    train_G_every_n_iterations: int = 4
    nepochs_no_decay: int = 30
    nepochs_decay: int = 20
    lr_final: float = 1e-5        # the decay ends at this rate (the paper); GANimation's ends at 0
    flip: bool = True
    # data
    dataset: str = "synthfaces"   # "synthfaces", or a folder with OpenFace AU files (GANimation's layout):
    #                               "openface", "affectnet" (AffectNet crops laid out that way, as the paper)
    data_root: str = ""           # that folder (faceedit_nb.data.OpenFaceAUs documents the layout)

    # cpu: 64 px (the cpu oracles' size), GANimation's cpu critic (width 32, 5 layers), a generator of width
    # 16, 2 epochs (400 iterations). Planned from seconds per iteration measured on the book's 2-core machine
    # while it ran other training (one thread, bf16; seconds_per_iteration): full model 2.69 s at width 32
    # (16.0 M parameters; 5.22 s in fp32), 0.91 s at width 16 (4.1 M), the U-Net (k_MSF = 0) 0.77 s at width
    # 16. Five U-Net models of 400 iterations: ~30 process-minutes, 15 minutes on 2 workers, leaving the rest
    # of the series' 20 minutes to "GANimation w/ v_rel", which costs what GANimation's cpu recipe costs.
    # A first plan, not a tuned recipe: the baselines' cpu recipes are being re-tuned.
    _CPU = dict(curve_every=100, curve_oracles="cpu", image_size=64, g_conv_dim=16, d_conv_dim=32,
                d_repeat_num=5, nepochs_no_decay=1, nepochs_decay=1, log_every=20, sample_every=200,
                snapshot_every=100)
    _SMOKE = dict(curve_every=3, curve_faces=16, curve_oracles="smoke", image_size=32, n_train=64,
                  n_identities=8, g_conv_dim=8, d_conv_dim=8, d_repeat_num=4, batch_size=8,
                  train_G_every_n_iterations=2, nepochs_no_decay=1, nepochs_decay=1, log_every=2,
                  sample_every=8, snapshot_every=4)

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}; got {self.generator!r}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {self.condition!r}")
        if self.generator == "ganimation" and self.condition == "absolute":
            raise ValueError("GANimation with absolute AUs is the baseline itself: use "
                             "faceedit_nb.papers.ganimation.load_ganimation (cached once for every series)")
        if not 0 <= self.k_msf <= 3:
            raise ValueError(f"k_msf must lie in 0..3 (MSF modules on the 1/8, 1/4, 1/2 skips); got {self.k_msf}")
        if self.generator == "unet_msf" and self.image_size % 16:
            raise ValueError(f"the U-Net halves the image four times: image_size must be divisible by 16; "
                             f"got {self.image_size}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; got {self.dataset!r}")
        if self.dataset != "synthfaces" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} is read from disk: set data_root to its folder "
                             "(imgs/, aus_openface/, train_ids.csv, test_ids.csv), or use dataset='synthfaces'")
        if not 0 < self.lr_final <= self.lr_G:
            raise ValueError(f"lr_final must lie in (0, lr_G]; got {self.lr_final}")

    @property
    def relative(self) -> bool:
        return self.condition == "relative"


def config_for(profile: str, **overrides) -> RelativeAUConfig:
    """Ours (the full model: UNet_MSF with 3 MSF modules, relative AUs) at a profile."""
    return RelativeAUConfig.profile(profile, **overrides)


def ganimation_config(profile: str, seed: int = 0) -> GANimationConfig:
    """The baselines chapter's GANimation at a profile (the cached model Table 1 compares with)."""
    from ..ganimation import chapter_configs
    return chapter_configs(profile, seed=seed)["GANimation"]


def from_ganimation(ga: GANimationConfig, **overrides) -> RelativeAUConfig:
    """GANimation's config with relative AUs: every GANimation setting kept (networks, loss weights,
    schedule), ``generator="ganimation"``, ``condition="relative"``. The fields Ling et al. add are set so
    that they change nothing (no self-reconstruction, no image TV, GANimation's critic weight on edits)."""
    base = {f.name: getattr(ga, f.name) for f in fields(GANimationConfig)}
    base.update(generator="ganimation", condition="relative", lambda_G_cond=ga.lambda_D_cond, lambda_rec=0.0,
                lambda_tv=0.0, real_noise=0.0, lr_final=ga.lr_G * 1e-3, k_msf=0)
    return RelativeAUConfig(**{**base, **overrides})


SERIES = ("ours", "ours w/o v_rel", "k_MSF = 0", "k_MSF = 1", "k_MSF = 2", "GANimation w/ v_rel")
MSF_ROWS = ("k_MSF = 0", "k_MSF = 1", "k_MSF = 2", "ours")  # Table 1's MSF ablation, ours is k_MSF = 3


def series_configs(profile: str, seed: int = 0, **overrides) -> dict[str, RelativeAUConfig]:
    """The six models of the series at a profile (Table 1 and 3; GANimation itself is the baselines
    chapter's cached model, :func:`ganimation_config`)."""
    ours = config_for(profile, seed=seed, **overrides)
    out = {"ours": ours, "ours w/o v_rel": ours.replace(condition="absolute")}
    out.update({f"k_MSF = {k}": ours.replace(k_msf=k) for k in (0, 1, 2)})
    data = {k: v for k, v in overrides.items() if k in ("dataset", "data_root")}
    out["GANimation w/ v_rel"] = from_ganimation(ganimation_config(profile, seed), **data)
    return {k: out[k] for k in SERIES}


def check_evaluation_data(dataset: str, data_root: str = "") -> None:
    """03_ablations and 04_results refuse models trained on real data (:func:`faceedit_nb.methods.check_evaluation_data`)."""
    _check_evaluation_data(dataset, data_root, datasets=DATASETS,
                           needs='ED needs an AU regressor for that data (the paper runs OpenFace on the edits; faceedit_nb.data.read_openface_csv reads its CSVs)')
