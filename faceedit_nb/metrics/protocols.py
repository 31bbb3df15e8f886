"""The papers' test protocols: which target every test image is translated to.

=================  ==========================================================================  =======
protocol           targets per test image (labels the editor receives)                         rows
=================  ==========================================================================  =======
``expression``     each of the 8 RaFD expressions (index tensors); ``include_source=False``     8
                   leaves out the image's own expression (7 targets)
``attributes``     each of the 13 AttGAN attributes flipped, one at a time, conflicts resolved  13
                   as AttGAN does (13-d 0/1 vectors)
``stargan``        StarGAN's 5 CelebA targets: each hair colour set (the others cleared), Male  5
                   flipped, Young flipped (5-d 0/1 vectors)
``aus``            the AUs of ``n_targets`` (7) other test images chosen at random (17-d AU     donor's
                   vectors in [0, 1]): GANimation / Ling et al.                                 expression
``expression_aus`` for each of the 8 expressions, the AUs of a random test image showing it:   8
                   DefGAN's "AU representation for each expression"
=================  ==========================================================================  =======

What the papers say:

* RaFD / expressions. secgan.txt (Sec. 4.4): "we translate all test images by editing each of the 13
  attributes or 8 expressions"; StarGAN's ``test()`` (yunjey/stargan ``solver.py``) also renders every
  image with each of the 8 one-hot targets, the source's own included. seg-hierarchical-gan.txt only
  says "the images translated from the real-test set". The book's default is all 8 (an edit to the
  image's own expression is part of the protocol: it checks that an editor leaves a face alone);
  ``include_source=False`` gives the 7-target variant.
* CelebA / attributes. AttGAN and STGAN test by inverting one attribute at a time, then clearing the
  attributes that conflict with it (``elvisyjlin/AttGAN-PyTorch:utils.py`` ``check_attribute_conflict``:
  setting Bald clears Bangs and vice versa, setting a hair colour clears the other colours, setting
  Mustache clears No_Beard and vice versa); the accuracy counts the edited attribute only.
* StarGAN's CelebA targets (``solver.py`` ``create_labels``): for each of Black_Hair, Blond_Hair,
  Brown_Hair set that colour and clear the others; Male and Young are inverted.
* AUs. relative-au-msf.txt (Sec. 4.2): "3234 images ... each of which is transformed to 7 randomly
  selected expressions. Therefore, we get 22638 image pairs"; the targets are AU vectors of other
  images, as GANimation draws them (another sample's AUs; the book adds no noise at test time).
* DefGAN (defgan.txt Sec. 4.2): "the AU representation for each expression was computed by running the
  OpenFace AU detector on all the peak expression images of a randomly selected person"; Fig. 3 uses
  "fifty different randomly chosen representations of each expression". The book draws, for every test
  image and expression, the AUs of a random test image showing that expression.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import labels as L

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "flip_attribute", "stargan_targets", "STARGAN_COLUMNS"]


@dataclass(frozen=True)
class Protocol:
    name: str
    label: str  # what the editor receives: "expression" (indices), "attributes" (13), "stargan" (5), "aus" (17)
    classes: tuple[str, ...]  # the per-class rows
    summary: str


PROTOCOLS = {
    "expression": Protocol("expression", "expression", L.EXPRESSIONS,
                           "every test image to each of the 8 expressions (StarGAN / SeCGAN, RaFD)"),
    "attributes": Protocol("attributes", "attributes", L.ATTRIBUTES,
                           "each of the 13 attributes flipped one at a time (AttGAN / STGAN / SeCGAN, CelebA)"),
    "stargan": Protocol("stargan", "stargan", L.STARGAN_CELEBA_ATTRIBUTES,
                        "StarGAN's 5 CelebA targets: a hair colour set, Male or Young flipped"),
    "aus": Protocol("aus", "aus", L.EXPRESSIONS + ("free AUs",),
                    "every test image to the AUs of 7 random other test images (GANimation / Ling et al.); "
                    "rows by the donor's expression"),
    "expression_aus": Protocol("expression_aus", "aus", L.EXPRESSIONS,
                               "every test image to the AUs of a random test image of each expression (DefGAN)"),
}

STARGAN_COLUMNS = torch.tensor([L.ATTRIBUTES.index(a) for a in L.STARGAN_CELEBA_ATTRIBUTES])
_A = {a: i for i, a in enumerate(L.ATTRIBUTES)}
_HAIR = [_A[a] for a in L.HAIR_COLOUR_ATTRIBUTES]


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def flip_attribute(attributes: torch.Tensor, k: int) -> torch.Tensor:
    """AttGAN's test target: attribute ``k`` inverted, then the attributes that conflict with a newly set
    attribute cleared (``check_attribute_conflict`` of elvisyjlin/AttGAN-PyTorch). ``attributes``:
    ``(B, 13)`` 0/1 in ``labels.ATTRIBUTES`` order."""
    t = attributes.clone().float()
    t[:, k] = 1 - t[:, k]
    on = t[:, k] > 0.5
    clears = {_A["Bald"]: [_A["Bangs"]], _A["Bangs"]: [_A["Bald"]], _A["Mustache"]: [_A["No_Beard"]],
              _A["No_Beard"]: [_A["Mustache"]]}
    clears.update({h: [o for o in _HAIR if o != h] for h in _HAIR})
    for j in clears.get(k, []):
        t[:, j] = torch.where(on, torch.zeros_like(t[:, j]), t[:, j])
    return t


def stargan_targets(c_org: torch.Tensor, k: int) -> torch.Tensor:
    """StarGAN's ``create_labels`` for CelebA: target ``k`` of the 5 attributes (``labels.
    STARGAN_CELEBA_ATTRIBUTES``): a hair colour is set and the other two cleared; Male / Young inverted."""
    t = c_org.clone().float()
    names = L.STARGAN_CELEBA_ATTRIBUTES
    if names[k] in L.HAIR_COLOUR_ATTRIBUTES:
        for j, n in enumerate(names):
            if n in L.HAIR_COLOUR_ATTRIBUTES:
                t[:, j] = float(j == k)
    else:
        t[:, k] = 1 - t[:, k]
    return t
