"""The settings of LSSL (Bozorgtabar et al., "Learn to Synthesize and Synthesize to Learn", lssl.txt) and the
configs of the series' models, in one place so that every chapter asks the model cache for the same models.

LSSL is a StarGAN-style translator (one generator for every domain, a WGAN-GP critic with an auxiliary
attribute classifier, five critic steps per generator step): :class:`LSSLConfig` extends
:class:`faceedit_nb.papers.stargan.StarGANConfig` and sets what the paper changes (an encoder-decoder with a
landmark side image, the identity, parsing and bidirectional losses, batch 8, its schedule). Where each value
comes from: :data:`PAPER_STATES` (lssl.txt) and :data:`OUR_CHOICES` (where the paper is silent; the public code,
CreativePapers/Learn-to-Synthesize-and-Synthesize-to-Learn, covers synthesis only).
"""
from __future__ import annotations

from dataclasses import dataclass

from ... import labels as L
from ...methods import check_evaluation_data as _check_evaluation_data
from ..stargan import StarGANConfig

__all__ = ["ATTRIBUTE_CLASSES", "TASKS", "DATASETS", "LSSLConfig", "PARSER_KEYS", "parser_config", "config_for",
           "ABLATIONS", "SERIES", "series_configs", "pose_configs", "attribute_configs", "stargan_config",
           "PAPER_STATES", "OUR_CHOICES", "TABLE1", "TABLE2", "TABLE3", "FIG8", "check_evaluation_data"]

# the attribute y of one model and its classes (Fig. 1, 2, 12); labels.py holds the orders
ATTRIBUTE_CLASSES = {"expression": L.EXPRESSIONS, "yaw": tuple(f"{a} deg" for a in L.YAW_ANGLES),
                     "lighting": L.LIGHTING}
TASKS = ("synthesis", "pose_normalisation")
DATASETS = ("synthfaces", "rafd")

PAPER_STATES = {
    "generator": "an encoder-decoder: G_enc maps (x, s) to n x h/16 x w/16, G_dec a sub-pixel convolutional "
                 "decoder (Sec. 3.1); five stride-2 convs, six residual blocks, four up-sampling steps with "
                 "instance norm (Sec. 4.1)",
    "side input": "s: 2D Gaussians at the face's landmarks, concatenated with the image (Sec. 5.3)",
    "label": "the target attribute spatially replicated and concatenated with the latent feature (Sec. 5.3)",
    "discriminator": "PatchGAN on (image, side image) pairs, with an attribute classifier (Sec. 3.1, 4.1)",
    "parser": "a U-Net of depthwise (MobileNet) blocks, three components (lips, eyes, face skin), trained on "
              "Helen and frozen (Sec. 3.1, 4.1)",
    "losses": "Eq. 1 (WGAN-GP), 2-3 (summed binary cross-entropy of real / fake), 4 (identity L1 of the output "
              "against the input), 5 (pixel-wise softmax loss between P(x) and P(x')), 6 (image, side-image and "
              "latent cycle), 7 (the totals)",
    "weights": "λ_bi = 10, λ_id = 10, λ_p = 10, λ_gp = 10, λ_cls = 1 (Sec. 4)",
    "optimiser": "Adam 1e-4 (0.5, 0.999), batch 8, 128 x 128, horizontal flips, 5 critic steps per generator "
                 "step, linear decay after the first 100 epochs (Sec. 4); Fig. 11: 100 epochs are 50,000 "
                 "iterations on RaFD",
    "pose normalisation": "a simulated frontal face and an unlabelled real profile in, a realistic frontal face out, "
                          "through the same networks; the critic sees one image (Sec. 3.2, Fig. 3b)",
}
OUR_CHOICES = {
    "landmarks": "all 68 iBUG points in three channels (jaw and nose / brows and eyes / lips), so that the side "
                 "image has an image's 3 channels (the public code's 6-channel input); σ = 2 px at 128 px",
    "down-sampling": "the public code's 7x7 conv and four stride-2 convs (h/16, as Sec. 3.1), not five",
    "decoder widths": "1024 + n_y -> 512 -> 256 -> 128 -> 64 (the code's odd widths 515, 257 read as rounding)",
    "classification": "Eq. 2-3 as printed: binary cross-entropy summed over the one-hot classes",
    "parser data": "SynthFaces masks of other people (seed 1), 2,000 faces (Helen's training split has 2,000)",
    "parser training": "AdamW 5e-3 with OHEM cross-entropy and flips (the project's parser trainer, "
                       "face-parsing.PyTorch's loss): the small lips and eyes are lost under plain cross-entropy",
    "schedule": "200 epochs of 500 iterations (100,000), the last 100 decaying linearly to 0",
    "pose normalisation": "x: SynthFaces' flat ('simulated') frontal render; s: the same face rendered as a photo "
                          "at yaw 15-45 (the 'real profile'); the critic's real images: photo faces at any yaw "
                          "with their expression; no label enters G (the classifier head keeps the input's "
                          "expression), so the recogniser of Table 3 is not told the answer; Eq. 6 keeps its "
                          "latent term only (there is no target domain to cycle through)",
    "SimGAN": "SimGAN's refiner as the paper adapts it: the same G without side input, adversarial + self-"
              "regularisation L1 + the classification head, no parsing or bidirectional loss",
    "n_train": "3,200 SynthFaces faces (RaFD has 4,824 images, 1,608 frontal)",
}


@dataclass
class LSSLConfig(StarGANConfig):
    """LSSL on SynthFaces: a :class:`StarGANConfig` whose defaults are LSSL's where the paper changes StarGAN's.
    Inherited fields keep StarGAN's meaning (``lambda_cls``, ``lambda_gp``, ``n_critic``, the critic's width and
    depth, ``d_init``, ``d_warmup``); StarGAN's generator options do not apply and are refused."""
    # what one model translates (Sec. 3.1, Fig. 2)
    attribute: str = "expression"  # "expression" (the 8 RaFD classes), "yaw" (0-45 deg in 15-deg steps) or
    #                                "lighting" (normal / weak / dark)
    task: str = "synthesis"       # "synthesis" (Fig. 3a) or "pose_normalisation" (Fig. 3b)
    # the generator (Sec. 3.1, 4.1)
    side_input: bool = True       # the landmark heat map s beside x; False: Table 1's "W/O side input"
    heatmap_sigma: float = 2.0    # the Gaussians' width in pixels at 128 px (scaled with image_size)
    g_conv_dim: int = 64          # G_enc's first width; 4 stride-2 convs double it to 16x at h/16
    g_repeat_num: int = 6         # residual blocks at h/16
    condition: str = "target"     # the one-hot target y is tiled on G_enc's output (Sec. 5.3)
    # loss weights (Eq. 1, 7)
    lambda_bi: float = 10.0       # Eq. 6: image and side-image cycle + latent consistency
    lambda_id: float = 10.0       # Eq. 4: L1 of the output against the input
    lambda_p: float = 10.0        # Eq. 5: parsing loss through the frozen parser P
    lambda_rec: float = 0.0       # StarGAN's cycle: not used (LSSL's is Eq. 6, weighted by lambda_bi)
    latent_target: str = "both"   # Eq. 6's latent term ||G_enc(x, s) - G_enc(x', s')||_1: "both" (the paper's and
    #                               the public code's: the gradient reaches both encodings) or "detached" (G_enc(x, s)
    #                               a fixed target, so the term asks only that the edit encode as its input did)
    # the frozen parser P (Sec. 3.1: a depthwise-separable U-Net, lips / eyes / skin)
    parser_width: int = 32        # its first width
    parser_masks: int = 2000      # labelled faces (Helen's training split)
    parser_steps: int = 4000      # its training steps (AdamW, batch 32)
    parser_data_seed: int = 1     # SynthFaces seed of its faces (other people than the GAN's)
    # optimisation (Sec. 4)
    batch_size: int = 8
    n_critic: int = 5
    num_iters: int = 100_000      # 200 epochs of 500 iterations (Fig. 11: 100 epochs = 50,000 iterations)
    num_iters_decay: int = 50_000  # linear decay to 0 after the first 100 epochs
    lr_update_step: int = 500     # the rate changes once an epoch
    # data
    dataset: str = "synthfaces"   # "synthfaces" or "rafd" (data_root: RaFD's images and their .pts landmarks)
    data_root: str = ""
    rafd_angles: tuple = (90,)    # RaFD camera angles (90 frontal; the pose models use 45, 90, 135)

    _UNHASHED_DEFAULTS = {"latent_target": "both"}  # added after models were cached: their keys stay

    # cpu: StarGAN's cpu levers for a critic that learns its classes first (He init, a warm-up of its class
    # head, a generator step every iteration at 5x / 10x the paper's rates), at 64 px with a 16-wide G of 2
    # blocks. A first plan from benchmarks/lssl_step.py (see _WHY), not a tuned recipe: 500 generator updates
    # are a quarter of what StarGAN's cpu recipe gets, and StarGAN's edits were still growing at 2,000.
    _PAPER_CURVE_POINTS = 0  # its training measures no learning curve
    _CPU = dict(curve_every=0, curve_oracles="cpu", image_size=64, g_conv_dim=16, g_repeat_num=2, d_conv_dim=32,
                d_repeat_num=5, d_init="he", d_warmup=500, n_critic=1, g_lr=5e-4, d_lr=1e-3, batch_size=16,
                num_iters=1000, num_iters_decay=0, lr_update_step=100, n_train=1600, n_identities=100,
                parser_width=16, parser_masks=1000, parser_steps=400, log_every=50, sample_every=500,
                snapshot_every=250)
    _WHY = {
        "image_size": "64 px: a CPU budget (the oracles, the metrics and SynthFaces' bars are at 64 px)",
        "g_conv_dim": "StarGAN's cpu width: 16 x 16 = 256 channels at 4 x 4 (G: 4.7 M parameters; D 2.8 M)",
        "g_repeat_num": "StarGAN's cpu depth",
        "d_conv_dim": "StarGAN's cpu critic (width 32, 5 layers: a 2 x 2 map at 64 px)",
        "d_repeat_num": "StarGAN's cpu critic (width 32, 5 layers: a 2 x 2 map at 64 px)",
        "d_init": "StarGAN's cpu lever: with PyTorch's init a 5-layer critic's class head sat at chance for ~500 "
                  "steps (benchmarks/cpu_recipes_findings.md)",
        "d_warmup": "the generator can only learn the classes the critic knows: 500 cheap steps of its class head "
                    "on real faces first (StarGAN's cpu recipe uses 1,000)",
        "n_critic": "StarGAN's cpu lever: a generator update every iteration",
        "g_lr": "StarGAN's cpu rates (5e-4 / 1e-3)",
        "d_lr": "StarGAN's cpu rates (5e-4 / 1e-3)",
        "batch_size": "StarGAN's cpu batch (16; the paper's 8)",
        "num_iters": "500 warm-up steps + 500 GAN iterations per model, the series' 20 minutes on 2 workers: "
                     "benchmarks/lssl_step.py measured the nine models' iterations at 0.81x-1.47x StarGAN's cpu "
                     "iteration (11.1x together), which takes ~0.4 s on the book's machine, so 500 iterations "
                     "each are ~37 worker-minutes, plus the warm-ups (0.09x) and the parser",
        "num_iters_decay": "a constant rate, as StarGAN's cpu recipe",
        "n_train": "1,600 faces of 100 people: half StarGAN's, the same 16 per person",
        "n_identities": "1,600 faces of 100 people: half StarGAN's, the same 16 per person",
        "parser_width": "16 wide, 400 steps on 1,000 faces: held-out IoU lips 0.61, eyes 0.79, skin 0.94 (mIoU 0.83); "
                        "8 wide with 300 steps of plain cross-entropy found no lips or eyes at all (IoU 0)",
        "parser_masks": "1,000 faces: the parsing loss needs lips, eyes and skin, not fine detail",
        "parser_steps": "400 steps (SeCGAN's cpu parser's): 16 wide, mIoU 0.83 on held-out faces",
    }
    _SMOKE = dict(curve_every=0, curve_oracles="smoke", image_size=32, n_train=64, n_identities=8, g_conv_dim=4,
                  g_repeat_num=1, d_conv_dim=8, d_repeat_num=4, batch_size=8, n_critic=2, num_iters=6,
                  num_iters_decay=2, lr_update_step=1, parser_width=4, parser_masks=32, parser_steps=3,
                  log_every=2, sample_every=6, snapshot_every=3)

    @property
    def c_dim(self) -> int:
        """Classes of the attribute (the critic's head; G's condition in synthesis)."""
        return len(ATTRIBUTE_CLASSES[self.attribute])

    @property
    def condition_dim(self) -> int:
        """Channels of y tiled on the latent: none in pose normalisation (no label enters G there)."""
        return 0 if self.task == "pose_normalisation" else self.c_dim

    @property
    def protocol(self) -> str:
        return "expression"

    @property
    def total_steps(self) -> int:
        return self.num_iters

    @property
    def sigma_pixels(self) -> float:
        """The heat map's Gaussian width at this image size (``heatmap_sigma`` px at 128 px)."""
        return self.heatmap_sigma * self.image_size / 128

    def __post_init__(self):
        super().__post_init__()
        if self.attribute not in ATTRIBUTE_CLASSES:
            raise ValueError(f"attribute must be one of {tuple(ATTRIBUTE_CLASSES)}; got {self.attribute!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {self.task!r}")
        if self.task == "pose_normalisation" and self.attribute != "expression":
            raise ValueError("pose normalisation keeps the input's expression (attribute='expression')")
        if self.domain != "expression" or self.condition != "target":
            raise ValueError("LSSL's y is one attribute's one-hot class (set `attribute`, not StarGAN's "
                             "`domain` / `condition`)")
        stargan_only = {"g_residual": False, "g_upsample": "deconv", "d_projection": False, "share_fakes": False,
                        "d_cls_fake": 0.0, "lambda_rec": 0.0}
        bad = [k for k, v in stargan_only.items() if getattr(self, k) != v]
        if bad:
            raise ValueError(f"{bad} are StarGAN's generator / critic options and do not apply to LSSL's "
                             f"encoder-decoder (leave them at {[stargan_only[k] for k in bad]})")
        if self.latent_target not in ("both", "detached"):
            raise ValueError(f"latent_target must be 'both' (the paper's) or 'detached'; got {self.latent_target!r}")
        if self.heatmap_sigma <= 0:
            raise ValueError(f"heatmap_sigma must be positive (pixels at 128 px); got {self.heatmap_sigma}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; got {self.dataset!r}")
        if self.dataset == "rafd" and not self.data_root:
            raise ValueError("dataset='rafd' is read from disk: set data_root to the folder of RaFD's images "
                             "(each with a .pts file of its 68 landmarks), or use dataset='synthfaces'")
        if self.dataset == "rafd" and self.attribute == "lighting":
            raise ValueError("RaFD has one lighting: its models are attribute='expression' or 'yaw'")


PARSER_KEYS = ("image_size", "parser_width", "parser_masks", "parser_steps", "parser_data_seed", "seed", "version")


def parser_config(cfg: LSSLConfig) -> dict:
    """The settings that decide the frozen parser P (its cache key, shared by every model that uses it)."""
    return {k: getattr(cfg, k) for k in PARSER_KEYS}


def config_for(profile: str, **overrides) -> LSSLConfig:
    """LSSL (every loss, the side input) at a profile."""
    return LSSLConfig.profile(profile, **overrides)


# Table 1's component rows: what each switches off
ABLATIONS = {
    "w/o side input": dict(side_input=False),
    "w/o bidirectional loss": dict(lambda_bi=0.0),
    "w/o parsing loss": dict(lambda_p=0.0),
}
SERIES = ("LSSL",) + tuple(ABLATIONS)


def series_configs(profile: str, seed: int = 0, **overrides) -> dict[str, LSSLConfig]:
    """LSSL and its three component ablations on the expressions (Table 1's rows) at a profile."""
    ours = config_for(profile, seed=seed, **overrides)
    return {"LSSL": ours, **{name: ours.replace(**kw) for name, kw in ABLATIONS.items()}}


def attribute_configs(profile: str, seed: int = 0, **overrides) -> dict[str, LSSLConfig]:
    """The pose and lighting models of Fig. 2 (one model per attribute, as the paper's figures)."""
    return {a: config_for(profile, seed=seed, attribute=a, **overrides) for a in ("yaw", "lighting")}


def pose_configs(profile: str, seed: int = 0, **overrides) -> dict[str, LSSLConfig]:
    """Table 3's refiners: LSSL's pose normalisation, without its parsing loss, and SimGAN's refiner."""
    ours = config_for(profile, seed=seed, task="pose_normalisation", **overrides)
    return {"LSSL": ours, "LSSL w/o parsing loss": ours.replace(lambda_p=0.0),
            "SimGAN": ours.replace(side_input=False, lambda_p=0.0, lambda_bi=0.0)}


def stargan_config(profile: str, seed: int = 0):
    """The baselines chapter's StarGAN on the 8 expressions (the cached model LSSL is compared with)."""
    from ..stargan import chapter_configs
    return chapter_configs(profile, seed=seed)["expression"]


# The paper's numbers (accuracy %)
TABLE1 = {"HOG 3D": 70.63, "AdaLBP": 73.54, "Atlases": 75.52, "STM-ExpLet": 74.59, "DTAGN": 81.46,
          "StarGAN": 83.90, "LSSL W/O Side Input": 84.70, "LSSL W/O Bidirectional Loss": 84.30,
          "LSSL W/O Face Parsing Loss": 86.95, "LSSL": 87.40}  # Oulu-CASIA, real + 30K synthetic
TABLE2 = {"Real Test Set": 90.42, "CycleGAN": 84.40, "IcGAN": 80.32, "StarGAN": 85.15,
          "LSSL W/O Face Parsing Loss": 89.91, "LSSL": 90.35}  # MUG: a real-trained classifier reads edits
TABLE3 = {"Real Profile Face Images": (70.15, 66.50, 58.90), "Simulated Frontal Face Images": (70.91, 65.90, 59.30),
          "CycleGAN": (71.60, 67.32, 61.50), "Lai and Lai (2018)": (71.45, 67.60, 61.95),
          "Zhang et al. (2018)": (71.72, 67.65, 62.10), "LSSL W/O Face Parsing Loss": (72.10, 68.52, 63.35),
          "LSSL": (72.70, 69.10, 64.05)}  # BU-3DFE, at yaw ±15, ±30, ±45
FIG8 = {"synthetic images per class": (500, 1000, 2000, 5000, 10000),
        "text": "accuracy rises to 87.40 % with 30K synthetic images and saturates at 60K (Sec. 5.1)"}


def check_evaluation_data(dataset: str, data_root: str = "") -> None:
    """03_ablations and 04_results refuse models trained on real data
    (:func:`faceedit_nb.methods.check_evaluation_data`)."""
    _check_evaluation_data(dataset, data_root, datasets=DATASETS,
                           needs="recognition accuracy needs an expression classifier trained on that data set's "
                                 "own training identities")
