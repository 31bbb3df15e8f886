"""The one canonical place for every label order used in the book, and the mappings between them.

Every other module imports its label orders from here; nothing else spells them out.

Orders
------
* ``EXPRESSIONS``: the 8 RaFD expressions in RaFD's alphabetical order (StarGAN's ImageFolder order,
  MatchGAN's class order).
* ``AUS``: the 17 OpenFace intensity action units (``AUxx_r`` columns), as GANimation uses them.
* ``ATTRIBUTES``: the 13 CelebA attributes of AttGAN / STGAN / SeCGAN, in their order.
* ``CELEBA_ATTRIBUTES``: all 40 columns of ``list_attr_celeba.txt``, in file order.
* ``PARSING_CLASSES``: the official CelebAMask-HQ 19-class order (CelebAMask-HQ#99). This is the
  canonical mask order of SynthFaces and of every loader.
* ``BISENET_CLASSES``: the order of zllrunning/face-parsing.PyTorch (BiSeNet), for users with its weights.
* ``SECGAN_CLASSES``, ``LSSL_CLASSES``, ``LOCAL_PARTS``: the coarser label sets of the papers.

Side convention: ``l_`` / ``left`` means the *subject's* left, which appears on the right of the image
(as in the iBUG-300W landmark order, where points 36-41 are the subject's right eye, on the image left).
"""
from __future__ import annotations

import torch

# --- expressions -----------------------------------------------------------------------------------
EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
NO_EXPRESSION = -1  # expression label of samples drawn with free random AUs (use ignore_index=-1)

# --- action units ----------------------------------------------------------------------------------
AU_NUMBERS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AUS = tuple(f"AU{n:02d}" for n in AU_NUMBERS)
AU_NAMES = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer",
    "AU05": "upper lid raiser", "AU06": "cheek raiser", "AU07": "lid tightener",
    "AU09": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU14": "dimpler", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU20": "lip stretcher", "AU23": "lip tightener", "AU25": "lips part", "AU26": "jaw drop",
    "AU45": "blink",
}
OPENFACE_AU_COLUMNS = tuple(f"{a}_r" for a in AUS)  # intensity 0-5 in OpenFace CSVs
OPENFACE_AU_SCALE = 5.0  # AUs are stored in [0, 1]: OpenFace's 0-5 divided by 5, as GANimation does

# FACS prototypes (AU -> intensity in [0, 1]) used by SynthFaces. ``contemptuous`` is unilateral.
EXPRESSION_PROTOTYPES = {
    "angry": {"AU04": 1.0, "AU05": 0.7, "AU07": 0.8, "AU23": 1.0},
    "contemptuous": {"AU12": 0.8, "AU14": 1.0},
    "disgusted": {"AU09": 1.0, "AU10": 0.9, "AU15": 0.5, "AU17": 0.6},
    "fearful": {"AU01": 1.0, "AU02": 0.8, "AU04": 0.6, "AU05": 1.0, "AU20": 1.0, "AU25": 0.8, "AU26": 0.4},
    "happy": {"AU06": 1.0, "AU12": 1.0, "AU25": 0.6},
    "neutral": {},
    "sad": {"AU01": 1.0, "AU04": 0.7, "AU15": 1.0, "AU17": 0.3},
    "surprised": {"AU01": 1.0, "AU02": 1.0, "AU05": 1.0, "AU25": 1.0, "AU26": 1.0},
}
UNILATERAL_EXPRESSIONS = ("contemptuous",)
# AffectNet's expression codes (Mollahosseini et al. 2017, the release README) -> RaFD names; 8-10 are dropped.
AFFECTNET_EXPRESSIONS = {0: "neutral", 1: "happy", 2: "sad", 3: "surprised", 4: "fearful", 5: "disgusted",
                         6: "angry", 7: "contemptuous"}
AFFECTNET_DROPPED = {8: "None", 9: "Uncertain", 10: "Non-Face"}
RAFD_GAZES = ("frontal", "left", "right")  # last field of a RaFD file name

# --- attributes ------------------------------------------------------------------------------------
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
ATTRIBUTES = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses", "Male",
    "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young",
)
HAIR_COLOUR_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair")  # mutually exclusive
STARGAN_CELEBA_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")

# --- face parsing ----------------------------------------------------------------------------------
PARSING_CLASSES = (  # official CelebAMask-HQ order; canonical in this project
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
BISENET_CLASSES = (  # zllrunning/face-parsing.PyTorch order
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
# Per-part PNG suffixes of CelebAMask-HQ-mask-anno (e.g. 00000_l_brow.png); background has no file.
CELEBAMASK_PART_FILES = PARSING_CLASSES[1:]

# SeCGAN's 12 segments (secgan.txt, Sec. 3): "others" is the union of background, necklace, hat, cloth.
SECGAN_CLASSES = (
    "others", "skin", "eyebrows", "eyes", "eyeglasses", "ears", "earrings", "nose", "mouth", "lips",
    "neck", "hair",
)
_SECGAN_OF = {
    "skin": "skin", "l_brow": "eyebrows", "r_brow": "eyebrows", "l_eye": "eyes", "r_eye": "eyes",
    "eye_g": "eyeglasses", "l_ear": "ears", "r_ear": "ears", "ear_r": "earrings", "nose": "nose",
    "mouth": "mouth", "u_lip": "lips", "l_lip": "lips", "neck": "neck", "hair": "hair",
}  # background, hat, neck_l (necklace) and cloth -> others
# LSSL's parsing loss uses three face regions (lssl.txt, Sec. 3.3); everything else is 0 (other).
LSSL_CLASSES = ("other", "lips", "eyes", "skin")
_LSSL_OF = {"u_lip": "lips", "l_lip": "lips", "l_eye": "eyes", "r_eye": "eyes", "skin": "skin"}
# The 4 local parts of Bodur et al. (seg-hierarchical-gan.txt, Sec. 3.1); 0 is "not a part".
LOCAL_PARTS = ("none", "left_eye_brow", "right_eye_brow", "nose", "mouth_lips")
_LOCAL_OF = {"l_eye": "left_eye_brow", "l_brow": "left_eye_brow", "r_eye": "right_eye_brow",
             "r_brow": "right_eye_brow", "nose": "nose", "mouth": "mouth_lips", "u_lip": "mouth_lips",
             "l_lip": "mouth_lips"}

# Horizontal flip swaps the subject's left and right classes.
FLIP_PAIRS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))


def _table(target_order, mapping, default=0) -> torch.Tensor:
    """Lookup table from canonical class index to an index of ``target_order``."""
    return torch.tensor([target_order.index(mapping[c]) if c in mapping else default
                         for c in PARSING_CLASSES], dtype=torch.long)


TO_BISENET = torch.tensor([BISENET_CLASSES.index(c) for c in PARSING_CLASSES], dtype=torch.long)
FROM_BISENET = torch.tensor([PARSING_CLASSES.index(c) for c in BISENET_CLASSES], dtype=torch.long)
TO_SECGAN = _table(SECGAN_CLASSES, _SECGAN_OF)
TO_LSSL = _table(LSSL_CLASSES, _LSSL_OF)
TO_LOCAL_PARTS = _table(LOCAL_PARTS, _LOCAL_OF)
FLIP_PERMUTATION = torch.arange(len(PARSING_CLASSES))
for _a, _b in FLIP_PAIRS:
    _i, _j = PARSING_CLASSES.index(_a), PARSING_CLASSES.index(_b)
    FLIP_PERMUTATION[_i], FLIP_PERMUTATION[_j] = _j, _i

_MAPPINGS = {"celebamask": None, "bisenet": TO_BISENET, "secgan": TO_SECGAN, "lssl": TO_LSSL,
             "local_parts": TO_LOCAL_PARTS}
CLASS_SETS = {"celebamask": PARSING_CLASSES, "bisenet": BISENET_CLASSES, "secgan": SECGAN_CLASSES,
              "lssl": LSSL_CLASSES, "local_parts": LOCAL_PARTS}


def map_mask(mask: torch.Tensor, to: str) -> torch.Tensor:
    """Map a label map in the canonical CelebAMask-HQ order to another class set.

    ``to`` is one of ``celebamask``, ``bisenet``, ``secgan``, ``lssl``, ``local_parts``.
    """
    if to not in _MAPPINGS:
        raise ValueError(f"unknown class set {to!r}; choose one of {sorted(_MAPPINGS)}")
    table = _MAPPINGS[to]
    mask = torch.as_tensor(mask).long()
    if mask.numel() and (mask.min() < 0 or mask.max() >= len(PARSING_CLASSES)):
        raise ValueError(f"mask values must lie in 0..{len(PARSING_CLASSES) - 1} (CelebAMask-HQ order), "
                         f"got {int(mask.min())}..{int(mask.max())}")
    return mask.clone() if table is None else table.to(mask.device)[mask]


def bisenet_to_canonical(mask: torch.Tensor) -> torch.Tensor:
    """Map a label map in the BiSeNet (face-parsing.PyTorch) order to the canonical order."""
    return FROM_BISENET.to(mask.device)[torch.as_tensor(mask).long()]


def flip_mask(mask: torch.Tensor) -> torch.Tensor:
    """Mirror a canonical label map horizontally, swapping the subject's left and right classes."""
    return FLIP_PERMUTATION.to(mask.device)[mask.long().flip(-1)]


def expression_index(name: str) -> int:
    """Index of an expression name (RaFD spelling) in ``EXPRESSIONS``, with a helpful error."""
    try:
        return EXPRESSIONS.index(name)
    except ValueError:
        raise ValueError(f"unknown expression {name!r}; expected one of {EXPRESSIONS}") from None


def prototype_aus(expression: str | int) -> torch.Tensor:
    """The FACS prototype of an expression as a 17-vector in ``AUS`` order (values in [0, 1])."""
    name = EXPRESSIONS[expression] if isinstance(expression, int) else expression
    expression_index(name)
    v = torch.zeros(len(AUS))
    for au, value in EXPRESSION_PROTOTYPES[name].items():
        v[AUS.index(au)] = value
    return v


PROTOTYPES = torch.stack([prototype_aus(e) for e in EXPRESSIONS])  # (8, 17)

# --- other SynthFaces labels -----------------------------------------------------------------------
LIGHTING = ("normal", "weak", "dark")  # LSSL's lighting classes
STYLES = ("photo", "flat")  # "flat": untextured render, LSSL's synthetic-to-real experiment
YAW_ANGLES = (0, 15, 30, 45)  # LSSL's pose classes: yaw in degrees, 0-45 in 15-degree steps (lssl.txt, Fig. 2a)

# iBUG-300W 68-point landmark groups (0-based, end exclusive)
LANDMARK_GROUPS = {
    "jaw": (0, 17), "right_brow": (17, 22), "left_brow": (22, 27), "nose_bridge": (27, 31),
    "nose_bottom": (31, 36), "right_eye": (36, 42), "left_eye": (42, 48), "outer_lips": (48, 60),
    "inner_lips": (60, 68),
}
