"""SynthFaces: a procedural face renderer with ground truth for every label the five papers use.

Every image comes with its identity, expression, 17 AU intensities, 13 CelebA attributes, a 19-class
parsing mask (CelebAMask-HQ order), 68 iBUG landmarks, pose, lighting and style, and one thing no real
data set has: the true answer to any edit (the same person re-rendered with the target expression or
attributes, see :func:`render` and :meth:`SynthFaces.render_targets`).

How it works
------------
* All randomness is a counter-based hash of ``(seed, stream, key)`` (splitmix64), so sample ``k`` of a
  split is the same on every run, machine and batch composition.
* A face is a set of analytic shapes (super-ellipses, regions between lid and lip curves, brow bands)
  in *face coordinates* (the image spans [-1, 1], y points down). Each shape gives an approximate signed
  distance ``d``; its anti-aliased coverage is ``clamp(0.5 - d / pixel_size, 0, 1)``. Shapes are painted
  back to front; the parsing label of a pixel is the class of the top-most shape covering it by half.
* Action units move the geometry (brows, lids, lip corners, jaw) and add the texture they add on a face
  (wrinkles, teeth, the dark inside of the mouth). Attributes switch hair, glasses, beard, skin tone...
* Pose is a 2.5-D approximation: each feature has a depth and is rotated with yaw and pitch before an
  orthographic projection; roll, scale and shift act on the whole picture.
* Rendering is vectorised over a batch in torch; the :class:`SynthFaces` data set renders chunks of
  samples at once and keeps them in memory.

Conventions: side 0 is the subject's right (image left), side 1 the subject's left (image right), as in
``faceedit_nb.labels``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import labels as L

__all__ = ["SynthFaces", "render", "identity_attributes", "SPLITS"]

SPLITS = ("train", "val", "test")
_IDENTITY_OFFSET = {"train": 0, "val": 100_000, "test": 200_000}  # identity-disjoint splits
_DEFAULT_N_IDENTITIES = {"train": 200, "val": 40, "test": 40}
# The "studio" backdrop: one colour behind every face, as in RaFD's photo studio (the identity backdrops'
# colour wheel at hue 1/3, a light blue). With per-person backdrops a translation network may recolour the
# background of an edit (cycle-consistently) and nothing in a critic can tell, since any colour is real.
BACKGROUNDS = ("identity", "studio")
STUDIO_BACKGROUND = torch.tensor([[0.40, 0.40, 0.85]])
MIN_SIZE, MAX_SIZE = 32, 256

_A = {name: i for i, name in enumerate(L.AUS)}
_A.update({f"AU{n}": i for i, n in enumerate(L.AU_NUMBERS)})  # "AU6" as well as "AU06"
_T = {name: i for i, name in enumerate(L.ATTRIBUTES)}

# ---------------------------------------------------------------------------------------------------
# Counter-based randomness


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_uniform(keys, stream: int, n: int, seed: int = 0) -> torch.Tensor:
    """``(len(keys), n)`` float32 uniforms in [0, 1) that depend only on ``(seed, stream, key, column)``."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = _splitmix64(np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(stream))
        h = _splitmix64(keys ^ base)
        cols = np.arange(n, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        z = _splitmix64(h[:, None] + cols[None, :])
    return torch.from_numpy(((z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# Identities

_SKIN_TONES = torch.tensor([[0.95, 0.78, 0.66], [0.88, 0.67, 0.53], [0.74, 0.53, 0.39],
                            [0.56, 0.38, 0.27], [0.40, 0.27, 0.19]])
_PALE_SKIN = torch.tensor([1.00, 0.92, 0.88])
_HAIR = {"black": [0.07, 0.06, 0.06], "blond": [0.92, 0.78, 0.45], "brown": [0.42, 0.25, 0.13],
         "gray": [0.66, 0.66, 0.68], "red": [0.66, 0.24, 0.10]}
_IRIS = torch.tensor([[0.36, 0.21, 0.10], [0.28, 0.48, 0.72], [0.30, 0.48, 0.30], [0.14, 0.09, 0.07]])
_GLASSES = torch.tensor([[0.05, 0.05, 0.05], [0.35, 0.20, 0.10], [0.75, 0.62, 0.30]])


def _identity_uniforms(identity: torch.Tensor, seed: int) -> torch.Tensor:
    return hash_uniform(identity.numpy(), stream=1, n=40, seed=seed)


def identity_attributes(identity, seed: int = 0) -> torch.Tensor:
    """The 13 attributes (``labels.ATTRIBUTES`` order, 0/1) an identity is born with.

    ``Mouth_Slightly_Open`` depends on the expression and is 0 here; :func:`render` sets it.
    """
    identity = torch.as_tensor(identity, dtype=torch.long).reshape(-1)
    u = _identity_uniforms(identity, seed)
    male = u[:, 0] < 0.5
    young = u[:, 1] < 0.65
    hair = u[:, 2]  # black, brown, blond, other (gray if old else red)
    bald = male & ~young & (u[:, 3] < 0.35)
    bangs = ~bald & (u[:, 4] < torch.where(male, 0.12, 0.35))
    a = torch.zeros(len(identity), len(L.ATTRIBUTES))
    a[:, _T["Male"]] = male.float()
    a[:, _T["Young"]] = young.float()
    a[:, _T["Bald"]] = bald.float()
    a[:, _T["Bangs"]] = bangs.float()
    a[:, _T["Black_Hair"]] = (~bald & (hair < 0.32)).float()
    a[:, _T["Brown_Hair"]] = (~bald & (hair >= 0.32) & (hair < 0.62)).float()
    a[:, _T["Blond_Hair"]] = (~bald & (hair >= 0.62) & (hair < 0.84)).float()
    a[:, _T["Bushy_Eyebrows"]] = (u[:, 5] < torch.where(male, 0.35, 0.12)).float()
    a[:, _T["Eyeglasses"]] = (u[:, 6] < 0.22).float()
    beard = male & (u[:, 7] < 0.4)
    a[:, _T["No_Beard"]] = (~beard).float()
    a[:, _T["Mustache"]] = (male & (u[:, 8] < torch.where(beard, 0.6, 0.15))).float()
    a[:, _T["Pale_Skin"]] = (u[:, 9] < 0.15).float()
    return a


def _identity_shape(identity: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Continuous identity parameters (face geometry, colours) drawn from the identity's own stream."""
    u = _identity_uniforms(identity, seed)

    def rng(col, lo, hi):
        return lo + (hi - lo) * u[:, col]

    tone = rng(10, 0.0, 1.0) * (len(_SKIN_TONES) - 1)
    i0 = tone.floor().long().clamp(max=len(_SKIN_TONES) - 2)
    f = (tone - i0).unsqueeze(1)
    skin = _SKIN_TONES[i0] * (1 - f) + _SKIN_TONES[i0 + 1] * f
    bg_hue = rng(11, 0.0, 1.0)
    bg = torch.stack([0.55 + 0.3 * torch.cos(2 * math.pi * (bg_hue + k / 3)) for k in range(3)], 1)
    cloth = torch.stack([rng(12 + k, 0.1, 0.9) for k in range(3)], 1)
    return {
        "skin": skin, "bg": bg, "cloth": cloth,
        "head_rx": rng(15, 0.47, 0.53), "head_ry_top": rng(16, 0.76, 0.82), "jaw_ry": rng(17, 0.60, 0.67),
        "jaw_q": rng(18, 2.0, 2.5), "eye_x": rng(19, 0.175, 0.205), "eye_w": rng(20, 0.085, 0.100),
        "eye_h": rng(21, 0.042, 0.054), "brow_y": rng(22, -0.255, -0.225), "brow_arch": rng(23, 0.01, 0.035),
        "brow_th": rng(24, 0.030, 0.040), "nose_len": rng(25, 0.20, 0.26), "nose_w": rng(26, 0.060, 0.085),
        "mouth_y": rng(27, 0.285, 0.315), "mouth_w": rng(28, 0.145, 0.170), "lip_u": rng(29, 0.034, 0.046),
        "lip_l": rng(30, 0.042, 0.056), "iris": _IRIS[(u[:, 31] * len(_IRIS)).long().clamp(max=3)],
        "hair_jitter": rng(32, 0.85, 1.1), "long_hair": (u[:, 33] < 0.75).float(),
        "other_hair_red": (u[:, 34] < 0.5).float(), "earrings": (u[:, 35] < 0.4).float(),
        "glasses_colour": _GLASSES[(u[:, 36] * 3).long().clamp(max=2)], "lip_red": rng(37, 0.0, 1.0),
        "eye_y": rng(38, -0.115, -0.085), "ear_y": rng(39, -0.06, -0.02),
    }


def _normalise_attributes(attrs: torch.Tensor) -> torch.Tensor:
    """Make an attribute vector consistent: one hair colour at most, no hair colour when bald,
    no beard or moustache on a woman. Mouth_Slightly_Open is decided by the mouth geometry."""
    a = attrs.clone().float().clamp(0, 1).round()
    bald = a[:, _T["Bald"]] > 0
    taken = bald.clone()
    for name in L.HAIR_COLOUR_ATTRIBUTES:  # precedence: black, blond, brown
        col = _T[name]
        a[:, col] = torch.where(taken, torch.zeros_like(a[:, col]), a[:, col])
        taken = taken | (a[:, col] > 0)
    a[:, _T["Bangs"]] = torch.where(bald, torch.zeros_like(bald, dtype=a.dtype), a[:, _T["Bangs"]])
    female = a[:, _T["Male"]] < 1
    a[:, _T["Mustache"]] = torch.where(female, 0.0, a[:, _T["Mustache"]])
    a[:, _T["No_Beard"]] = torch.where(female, 1.0, a[:, _T["No_Beard"]])
    return a


# ---------------------------------------------------------------------------------------------------
# Geometry helpers (all broadcast over a leading batch dimension)

_MOUTH_OPEN_GAP = 0.02  # face units: lips at least this far apart count as Mouth_Slightly_Open


def _mouth_gap(aus: torch.Tensor) -> torch.Tensor:
    """Lip parting in face units from AU25 (lips part), AU26 (jaw drop), AU12, AU23 and AU17."""
    a = lambda n: aus[:, _A[n]]  # noqa: E731
    # AU25 parts the lips on its own (its share is not cancelled by AU23/AU17 as AU26's jaw is): with
    # 0.05 * AU25 inside the product, a regressor read AU25 at r = 0.45 in free AU combinations
    lips = 0.06 * a("AU25") * (1 - 0.35 * a("AU23")) * (1 - 0.25 * a("AU17"))
    jaw = (0.12 * a("AU26") + 0.012 * a("AU12")) * (1 - 0.7 * a("AU23")) * (1 - 0.5 * a("AU17"))
    return lips + jaw


def _apply_mouth_attribute(aus: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Force the lips apart or together where a target Mouth_Slightly_Open asks for it."""
    if target is None:
        return aus
    aus = aus.clone()
    gap = _mouth_gap(aus)
    want_open = (target > 0.5) & (gap <= _MOUTH_OPEN_GAP)
    want_shut = (target <= 0.5) & (gap > _MOUTH_OPEN_GAP)
    for n in ("AU23", "AU17"):
        aus[:, _A[n]] = torch.where(want_open, aus[:, _A[n]].clamp(max=0.2), aus[:, _A[n]])
    aus[:, _A["AU25"]] = torch.where(want_open, aus[:, _A["AU25"]].clamp(min=0.75), aus[:, _A["AU25"]])
    for n in ("AU25", "AU26"):
        aus[:, _A[n]] = torch.where(want_shut, torch.zeros_like(aus[:, 0]), aus[:, _A[n]])
    return aus


def _superellipse(x, y, cx, cy, rx, ry, q=2.0):
    """Approximate signed distance to a super-ellipse |dx/rx|^q + |dy/ry|^q = 1.

    ``q`` is 2 (an ellipse), 4, or a per-sample tensor in [2, 4] that blends the two (cheaper than pow).
    """
    dx = (x - cx) / rx
    dy = (y - cy) / ry
    dx2, dy2 = dx * dx, dy * dy
    if isinstance(q, float) and q == 2.0:
        r = (dx2 + dy2).sqrt_()
    else:
        r4 = (dx2 * dx2 + dy2 * dy2).sqrt_().sqrt_()
        r = r4 if isinstance(q, float) and q == 4.0 else torch.lerp((dx2 + dy2).sqrt_(), r4, (q - 2) / 2)
    return (r - 1) * torch.minimum(torch.as_tensor(rx), torch.as_tensor(ry))


def _stroke(p, q, pm, qm, half_len, width, curv=0.0, slope=0.0):
    """Signed distance to a short curved line q = qm + slope (p - pm) + curv (p - pm)^2, |p - pm| < half_len."""
    dp = p - pm
    return torch.maximum((q - (qm + slope * dp + curv * dp * dp)).abs_() - width / 2, dp.abs() - half_len)


class _Grid:
    """The pixel grid of a batch in face coordinates, and windows of it around small features.

    Small features (eyes, mouth, wrinkles) are evaluated only inside the smallest pixel window that
    holds them in every sample of the batch, which makes rendering several times faster.
    """

    def __init__(self, size: int, scale, tx, ty, roll):
        B, S = scale.shape[0], size
        self.B, self.S = B, S
        self.scale, self.tx, self.ty = scale, tx, ty
        self.cr, self.sr = roll.cos(), roll.sin()
        g = (torch.arange(S, dtype=torch.float32) * 2 + 1) / S - 1
        self.g = g
        c = lambda t: t.view(B, 1, 1)  # noqa: E731
        u, v = g.view(1, 1, S), g.view(1, S, 1)
        self.x = ((u - c(tx)) * c(self.cr) + (v - c(ty)) * c(self.sr)) / c(scale)
        self.y = (-(u - c(tx)) * c(self.sr) + (v - c(ty)) * c(self.cr)) / c(scale)
        self.px = c(2.0 / (S * scale))  # pixel size in face units

    def to_pixels(self, fx, fy):
        """Face coordinates (B, K) to pixel coordinates (B, K)."""
        s, cr, sr = self.scale[:, None], self.cr[:, None], self.sr[:, None]
        ux = s * (fx * cr - fy * sr) + self.tx[:, None]
        uy = s * (fx * sr + fy * cr) + self.ty[:, None]
        return (ux + 1) * self.S / 2 - 0.5, (uy + 1) * self.S / 2 - 0.5

    def window(self, x0, x1, y0, y1) -> "_Window":
        """The window holding the face-coordinate box [x0, x1] x [y0, y1] (floats or (B,) tensors)."""
        B = self.B
        x0, x1, y0, y1 = (torch.as_tensor(t, dtype=torch.float32).expand(B) for t in (x0, x1, y0, y1))
        px_, py_ = self.to_pixels(torch.stack([x0, x1, x0, x1], 1), torch.stack([y0, y0, y1, y1], 1))
        c0 = int(max(0, math.floor(float(px_.min())) - 1))
        c1 = int(min(self.S, math.ceil(float(px_.max())) + 2))
        r0 = int(max(0, math.floor(float(py_.min())) - 1))
        r1 = int(min(self.S, math.ceil(float(py_.max())) + 2))
        return _Window(self, slice(r0, max(r0, r1)), slice(c0, max(c0, c1)))

    def full(self) -> "_Window":
        return _Window(self, slice(0, self.S), slice(0, self.S))


class _Window:
    def __init__(self, grid: _Grid, rows: slice, cols: slice):
        self.rows, self.cols = rows, cols
        self.x = grid.x[:, rows, cols]
        self.y = grid.y[:, rows, cols]
        self.px = grid.px
        self.xs, self.ys = self.x.unsqueeze(1), self.y.unsqueeze(1)  # for two-sided features

    def cov(self, d):
        """Anti-aliased coverage of a shape with signed distance ``d`` (B, h, w) or (B, 2, h, w)."""
        px = self.px if d.dim() == 3 else self.px.unsqueeze(1)
        return (0.5 - d / px).clamp_(0, 1)


class _Canvas:
    """Back-to-front painter of a batch: colour image, parsing label and texture amplitudes."""

    def __init__(self, bg: torch.Tensor, shape: tuple[int, int, int]):
        b, h, w = shape
        self.img = bg[:, :, None, None].expand(b, 3, h, w).clone()
        self.label = torch.zeros(b, h, w, dtype=torch.uint8)
        self.tex = torch.zeros(b, 2, h, w)  # amplitudes of the skin (fine) and hair (streak) textures

    def paint(self, w: _Window, cov, colour, label=None, skin_tex=0.0, hair_tex=0.0):
        """Paint ``colour`` with coverage ``cov`` inside window ``w``; the layer's texture amplitudes
        replace those below it."""
        colour = colour[:, :, None, None] if colour.dim() == 2 else colour
        img = self.img[:, :, w.rows, w.cols]
        weight = cov.unsqueeze(1)
        img.lerp_(colour.expand_as(img), weight)
        if label is not None:
            self.label[:, w.rows, w.cols].masked_fill_(cov > 0.5, label)
        tex = self.tex[:, :, w.rows, w.cols]
        tex.lerp_(torch.tensor([skin_tex, hair_tex]).view(1, 2, 1, 1).expand_as(tex), weight)

    def paint_sides(self, w: _Window, cov2, colour, labels_by_side, **tex):
        """Paint a (B, 2, h, w) coverage whose two sides carry different labels."""
        for s in range(2):
            self.paint(w, cov2[:, s], colour, labels_by_side[s], **tex)

    def darken(self, w: _Window, cov, strength):
        self.img[:, :, w.rows, w.cols].mul_((1 - cov * strength).unsqueeze(1))

    def label_is(self, w: _Window, *names) -> torch.Tensor:
        lab = self.label[:, w.rows, w.cols]
        out = lab == _LABEL[names[0]]
        for n in names[1:]:
            out |= lab == _LABEL[n]
        return out


# ---------------------------------------------------------------------------------------------------
# Textures: fixed, hash-generated noise tiles cropped at a per-sample offset

_TEX = 256


def _make_textures() -> tuple[torch.Tensor, torch.Tensor]:
    def noise(stream, cells):
        g = hash_uniform(np.arange(cells * cells), stream, 1).view(1, 1, cells, cells) * 2 - 1
        return torch.nn.functional.interpolate(g, size=(_TEX, _TEX), mode="bicubic", align_corners=False)[0, 0]

    fine = 0.6 * noise(101, 128) + 0.4 * noise(102, 32)
    streak = hash_uniform(np.arange(_TEX * 16), 103, 1).view(1, 1, 16, _TEX) * 2 - 1
    streak = torch.nn.functional.interpolate(streak, size=(_TEX, _TEX), mode="bilinear", align_corners=False)[0, 0]
    return fine / fine.abs().max(), 0.7 * streak + 0.3 * fine


_TEXTURES: tuple[torch.Tensor, torch.Tensor] | None = None


def _textures():
    global _TEXTURES
    if _TEXTURES is None:
        _TEXTURES = _make_textures()
    return _TEXTURES


def _crop_texture(tex: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    ar = torch.arange(size)
    iy = (offset[:, 1:2] + ar) % _TEX  # (B, S)
    ix = (offset[:, 0:1] + ar) % _TEX
    return tex[iy[:, :, None], ix[:, None, :]]


# ---------------------------------------------------------------------------------------------------
# The renderer

_LIGHT_LEVELS = torch.tensor([[0.52, 0.55], [0.38, 0.36], [0.20, 0.24]])  # (ambient, diffuse) per class
_LABEL = {name: i for i, name in enumerate(L.PARSING_CLASSES)}
_SIGN = torch.tensor([-1.0, 1.0])  # side 0 (subject's right) lies on the image left


def _project(x, y, z, cos_y, sin_y, cos_p, sin_p):
    """Rotate a face point by yaw then pitch and project orthographically (y points down)."""
    x1 = x * cos_y + z * sin_y
    z1 = -x * sin_y + z * cos_y
    return x1, y * cos_p - z1 * sin_p


def _eye_curves(X, ex, ey, ew, h_up, h_lo, side):
    """Upper and lower lid of an almond-shaped eye, and the horizontal distance outside its corners."""
    t = (X - ex) / ew
    b = (1 - t * t).clamp_(min=0)
    tilt = -0.012 * t * side  # outer corners slightly higher
    return ey + tilt - h_up * b, ey + tilt + h_lo * b, (t.abs() - 1) * ew


def _mouth_curves(X, cx, cy, hw, cdy, prm):
    """Outer and inner lip curves at positions X and the horizontal distance outside the corners.

    ``hw`` and ``cdy`` hold each side's half width and corner lift; ``prm`` per-sample lip parameters.
    """
    left = X < cx
    hw_x = torch.where(left, hw[0], hw[1])
    t = (X - cx) / hw_x
    t2 = t * t
    y0 = cy + torch.where(left, cdy[0], cdy[1]) * t2
    b = (1 - t2).clamp_(min=0)
    bs = b.sqrt()
    dip = 0.15 * torch.exp(-t2 / 0.02)  # the cupid's bow
    yui = y0 - (prm["gap_up"] + prm["raise_u"]) * b
    yuo = yui - prm["lip_u"] * bs * (1 - dip) - 0.004 * bs
    yli = y0 + (prm["gap_lo"] - prm["push_l"]) * b
    ylo = yli + prm["lip_l"] * bs
    return yuo, yui, yli, ylo, (t.abs() - 1) * hw_x


def _brow_centre(sp, bx_in, by_in, bx_out, by_out, arch):
    return by_in + (by_out - by_in) * sp - 4 * arch * sp * (1 - sp)


def _render_core(ident: dict, attrs: torch.Tensor, aus: torch.Tensor, lateral: torch.Tensor,
                 pose: torch.Tensor, framing: torch.Tensor, light_class: torch.Tensor,
                 light_dir: torch.Tensor, flat: torch.Tensor, tex_offset: torch.Tensor, size: int):
    """Render a batch. All inputs are batched tensors; returns image (B,3,S,S) in [-1,1], mask, landmarks."""
    B, S = aus.shape[0], size
    c = lambda t: torch.as_tensor(t, dtype=torch.float32).view(B, 1, 1) if torch.is_tensor(t) else t  # noqa: E731
    c2 = lambda t: t.reshape(B, 2, 1, 1)  # noqa: E731  per-sample-and-side scalar against the grid
    at = lambda n: attrs[:, _T[n]]  # noqa: E731
    au = lambda n: aus[:, _A[n]]  # noqa: E731
    # per-side AU intensity (B, 2): lateral +1 keeps an AU on the subject's left side (side 1) only
    side_gain = torch.stack([(1 - lateral).clamp(max=1), (1 + lateral).clamp(max=1)], 1)  # (B, 2, 17)
    aus2 = aus.unsqueeze(1) * side_gain
    au2 = lambda n: aus2[:, :, _A[n]]  # noqa: E731
    sign = _SIGN
    side_c = sign.view(1, 2, 1, 1)
    male, young, pale, bald = at("Male"), at("Young"), at("Pale_Skin"), at("Bald")
    old = 1 - young

    # --- pixel grid and pose -----------------------------------------------------------------------
    yaw, pitch, roll = (pose * (math.pi / 180)).unbind(1)
    cos_y, sin_y, cos_p, sin_p = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin()
    scale, tx, ty = framing.unbind(1)
    grid = _Grid(S, scale, tx, ty, roll)
    full = grid.full()
    x, y = full.x, full.y
    proj = lambda X, Y, Z: _project(X, Y, Z, cos_y, sin_y, cos_p, sin_p)  # noqa: E731
    proj2 = lambda X, Y, Z: _project(X, Y, Z, cos_y[:, None], sin_y[:, None], cos_p[:, None], sin_p[:, None])  # noqa: E731
    fw = cos_y  # horizontal foreshortening of features

    # --- colours ---------------------------------------------------------------------------------------
    skin = torch.where(pale[:, None] > 0, 0.75 * _PALE_SKIN + 0.25 * ident["skin"], ident["skin"])
    hair = torch.where(ident["other_hair_red"][:, None] > 0, torch.tensor(_HAIR["red"]), torch.tensor(_HAIR["gray"]))
    hair = torch.where(young[:, None] > 0, hair, torch.tensor(_HAIR["gray"]))
    for name in ("brown", "blond", "black"):  # black has precedence (see _normalise_attributes)
        hair = torch.where(attrs[:, _T[f"{name.capitalize()}_Hair"]][:, None] > 0, torch.tensor(_HAIR[name]), hair)
    hair = (hair * ident["hair_jitter"][:, None]).clamp(0, 1)
    hair = torch.where(young[:, None] > 0, hair, 0.75 * hair + 0.25 * torch.tensor(_HAIR["gray"]))
    bushy = at("Bushy_Eyebrows")
    brow_col = torch.minimum(hair, skin) * (0.55 - 0.25 * bushy[:, None])
    fem = (1 - male)[:, None]
    lip_col = skin * (torch.tensor([0.85, 0.55, 0.55]) * fem + torch.tensor([0.82, 0.62, 0.60]) * (1 - fem))
    lip_col = lip_col * (1 - 0.25 * ident["lip_red"][:, None] * fem) + torch.tensor([0.12, 0.0, 0.02]) * fem

    # --- head -------------------------------------------------------------------------------------------
    hrx = ident["head_rx"] * (1 + 0.05 * male)
    jaw_ry = ident["jaw_ry"] + 0.07 * au("AU26")
    jaw_q = (ident["jaw_q"] + 0.7 * male).clamp(2, 4)
    lower = y > 0
    ry = torch.where(lower, c(jaw_ry), c(ident["head_ry_top"]))
    q = torch.where(lower, c(jaw_q), torch.full_like(y, 2.0))
    d_head = _superellipse(x, y, 0.0, 0.0, c(hrx), ry, q)
    nx, ny = (x / c(hrx)).clamp(-1, 1), (y / ry).clamp(-1, 1)
    ldx, ldy, ldz = light_dir.unbind(1)
    lambert = (nx * c(ldx) + ny * c(ldy) + (1 - nx * nx - ny * ny).clamp_(min=0.02).sqrt_() * c(ldz)).clamp_(min=0)

    canvas = _Canvas(ident["bg"], (B, S, S))
    canvas.img.mul_(1.05 - 0.12 * grid.g.view(1, 1, S, 1))  # background gradient

    # --- clothes, hair behind the head, neck, ears ------------------------------------------------------
    w = grid.window(-1.6, 1.6, 0.7, 1.6)
    d_cloth_w = _superellipse(w.x, w.y, 0.0, 1.28, 1.05, 0.52, 4.0)
    canvas.paint(w, w.cov(d_cloth_w), ident["cloth"], _LABEL["cloth"])
    long_hair = ident["long_hair"] * (1 - male) * (1 - bald)
    d_cran = _superellipse(x, y, 0.0, -0.2, c(hrx + 0.07), c(ident["head_ry_top"] - 0.06))
    d_back = torch.maximum(d_cran, y - 0.02)  # short hair reaches down to the ears
    d_long = _superellipse(x, y, 0.0, 0.25, c(hrx + 0.11), 0.78, 4.0)
    d_back = torch.where(c(long_hair) > 0, torch.minimum(d_cran, d_long), d_back)
    canvas.paint(full, full.cov(d_back) * c(1 - bald), hair, _LABEL["hair"], hair_tex=0.22)
    neck_w = 0.21 + 0.05 * male
    w = grid.window(-neck_w - 0.05, neck_w + 0.05, 0.1, 1.6)
    d_cloth = _superellipse(w.x, w.y, 0.0, 1.28, 1.05, 0.52, 4.0)
    d_neck = torch.maximum(torch.maximum(w.x.abs() - c(neck_w), 0.15 - w.y), -d_cloth)
    canvas.paint(w, w.cov(d_neck), skin * 0.82, _LABEL["neck"], skin_tex=0.04)
    ear_y = proj(torch.zeros(B), ident["ear_y"], torch.full((B,), -0.05))[1]
    ear_x = sign * (hrx * fw)[:, None] + 0.012 * sign  # (B, 2)
    w = grid.window(-(hrx * fw) - 0.1, hrx * fw + 0.1, ear_y - 0.15, ear_y + 0.19)
    ecx, ecy = c2(ear_x), c2(ear_y[:, None].expand(B, 2))
    d_ear = _superellipse(w.xs, w.ys, ecx, ecy, 0.065, 0.125)
    canvas.paint_sides(w, w.cov(d_ear), skin * 0.92, (_LABEL["r_ear"], _LABEL["l_ear"]), skin_tex=0.04)
    earring = c2((ident["earrings"] * (1 - male))[:, None].expand(B, 2))
    ring = w.cov(((w.xs - ecx).square() + (w.ys - ecy - 0.14).square()).sqrt_() - 0.022) * earring
    for s in range(2):
        canvas.paint(w, ring[:, s], torch.tensor([0.85, 0.75, 0.35]).expand(B, 3), _LABEL["ear_r"])

    # --- the face ----------------------------------------------------------------------------------------
    canvas.paint(full, full.cov(d_head), skin, _LABEL["skin"], skin_tex=0.05)
    eye_x, eye_y, mouth_y = ident["eye_x"], ident["eye_y"], ident["mouth_y"]
    # cheeks: a little colour, raised and brighter with AU6 (cheek raiser)
    ch_x, ch_y = proj2(sign * eye_x[:, None], (eye_y + 0.15 - 0.035 * au("AU6"))[:, None].expand(B, 2),
                       torch.full((B, 2), 0.3))
    w = grid.window(ch_x.amin(1) - 0.2, ch_x.amax(1) + 0.2, ch_y.amin(1) - 0.15, ch_y.amax(1) + 0.15)
    blush = (0.5 - _superellipse(w.xs, w.ys, c2(ch_x), c2(ch_y), 0.10, 0.07) / 0.06).clamp_(0, 1)
    blush = (blush * c2(0.10 + 0.4 * au2("AU6"))).sum(1) * canvas.label_is(w, "skin")
    canvas.paint(w, 0.5 * blush, torch.tensor([0.9, 0.45, 0.45]).expand(B, 3), skin_tex=0.05)
    # beard: textured and darker; it keeps the skin label, as in CelebAMask-HQ
    beard = (1 - at("No_Beard")) * male
    w = grid.window(-hrx - 0.05, hrx + 0.05, mouth_y - 0.25, jaw_ry + 0.2)
    d_beard = torch.maximum(d_head[:, w.rows, w.cols], c(mouth_y + 0.07) - 0.25 * (w.x / c(hrx)).square() - w.y)
    canvas.paint(w, w.cov(d_beard) * c(beard), hair * 0.8 + 0.05, hair_tex=0.35)

    # --- nose ------------------------------------------------------------------------------------------
    nose_top_x, nose_top_y = proj(torch.zeros(B), eye_y - 0.01, torch.full((B,), 0.36))
    tip_x, tip_y = proj(torch.zeros(B), eye_y + ident["nose_len"], torch.full((B,), 0.58))
    tip_y = tip_y - 0.012 * au("AU9")
    nw = ident["nose_w"] * (1 + 0.25 * au("AU9")) * fw
    nostril_dx = 0.042 * (1 + 0.3 * au("AU9")) * fw
    w = grid.window(torch.minimum(nose_top_x, tip_x) - nw - 0.03, torch.maximum(nose_top_x, tip_x) + nw + 0.03,
                    nose_top_y - 0.02, tip_y + 0.04)
    frac = ((w.y - c(nose_top_y)) / c(tip_y - nose_top_y)).clamp_(0, 1)
    ncx = c(nose_top_x) + frac * c(tip_x - nose_top_x)
    nwy = 0.03 + frac.pow(1.5) * c(nw - 0.03)
    rel = ((w.x - ncx) / nwy).clamp_(-1, 1)
    d_nose = torch.maximum(torch.maximum((w.x - ncx).abs() - nwy, c(nose_top_y) - w.y), w.y - c(tip_y + 0.012))
    nose_col = skin[:, :, None, None] * (0.97 + 0.08 * rel * c(ldx) - 0.06 * rel * rel).unsqueeze(1)
    canvas.paint(w, w.cov(d_nose), nose_col, _LABEL["nose"], skin_tex=0.05)
    for sgn in (-1.0, 1.0):
        d_nostril = _superellipse(w.x, w.y, c(tip_x + sgn * nostril_dx), c(tip_y - 0.004), 0.018, 0.010)
        canvas.darken(w, w.cov(d_nostril), 0.55)

    # --- mouth -----------------------------------------------------------------------------------------
    m_x, m_y = proj(torch.zeros(B), mouth_y + 0.02 * au("AU26"), torch.full((B,), 0.40))
    half_w = (ident["mouth_w"][:, None] + 0.05 * au2("AU12") + 0.07 * au2("AU20") - 0.025 * au2("AU14")
              - 0.035 * au2("AU23") - 0.03 * au2("AU26")) * fw[:, None]  # (B, 2)
    corner_dy = (-0.09 * au2("AU12") - 0.015 * au2("AU14") + 0.075 * au2("AU15") + 0.015 * au2("AU20")
                 + 0.02 * au2("AU26"))  # (B, 2)
    gap = _mouth_gap(aus)
    thin = (1 - 0.45 * au("AU23") - 0.25 * au("AU20") - 0.15 * au("AU12")).clamp(min=0.3)
    lip = {"gap_up": 0.35 * gap, "gap_lo": 0.65 * gap,
           "lip_u": ident["lip_u"] * thin * (1.15 - 0.15 * male) * (0.85 + 0.15 * young),
           "lip_l": ident["lip_l"] * thin * (1.1 - 0.1 * male) * (0.85 + 0.15 * young),
           "raise_u": 0.03 * au("AU10"), "push_l": 0.025 * au("AU17")}
    w = grid.window(m_x - half_w[:, 0] - 0.04, m_x + half_w[:, 1] + 0.04,
                    tip_y, m_y + corner_dy.clamp(min=0).amax(1) + lip["gap_lo"] + lip["lip_l"] + 0.05)
    yuo, yui, yli, ylo, dx = _mouth_curves(w.x, c(m_x), c(m_y), (c(half_w[:, 0]), c(half_w[:, 1])),
                                           (c(corner_dy[:, 0]), c(corner_dy[:, 1])),
                                           {k: c(val) for k, val in lip.items()})
    moustache = at("Mustache") * male
    d_must = torch.maximum(torch.maximum(c(tip_y + 0.02) - w.y, w.y - yuo - 0.008),
                           (w.x - c(m_x)).abs() - c(half_w.amax(1) + 0.02))
    canvas.paint(w, w.cov(d_must) * c(moustache), hair * 0.75 + 0.03, hair_tex=0.3)
    canvas.paint(w, w.cov(torch.maximum(torch.maximum(yuo - w.y, w.y - yui), dx)), lip_col, _LABEL["u_lip"],
                 skin_tex=0.03)
    canvas.paint(w, w.cov(torch.maximum(torch.maximum(yli - w.y, w.y - ylo), dx)), lip_col * 1.04,
                 _LABEL["l_lip"], skin_tex=0.03)
    d_inner = torch.maximum(torch.maximum(yui - w.y, w.y - yli), dx)
    canvas.paint(w, w.cov(d_inner), torch.tensor([0.28, 0.06, 0.08]).expand(B, 3), _LABEL["mouth"])
    teeth = torch.tensor([0.96, 0.94, 0.88]).expand(B, 3)
    canvas.paint(w, w.cov(torch.maximum(d_inner, w.y - yui - 0.032)) * w.cov(dx + 0.012), teeth)
    lower_teeth = w.cov(torch.maximum(d_inner, yli - 0.018 - w.y)) * w.cov(dx + 0.02) * c((gap > 0.05).float())
    canvas.paint(w, lower_teeth, teeth * 0.92)

    # --- eyes --------------------------------------------------------------------------------------------
    ex, ey = proj2(sign * eye_x[:, None], eye_y[:, None].expand(B, 2), torch.full((B, 2), 0.30))
    ew = (ident["eye_w"] * fw)[:, None].expand(B, 2)
    closed = 1 - au2("AU45")
    h_up = ident["eye_h"][:, None] * (1 + 0.9 * au2("AU5") - 0.25 * au2("AU7") - 0.25 * au2("AU6")) * closed
    h_lo = (0.7 * ident["eye_h"][:, None] * (1 - 0.45 * au2("AU6") - 0.6 * au2("AU7") + 0.25 * au2("AU5"))
            * closed).clamp(min=0)
    w = grid.window(ex.amin(1) - ew.amax(1) - 0.08, ex.amax(1) + ew.amax(1) + 0.08,
                    ey.amin(1) - h_up.amax(1) - 0.03, ey.amax(1) + h_lo.amax(1) + 0.08)
    yu, yl, edx = _eye_curves(w.xs, c2(ex), c2(ey), c2(ew), c2(h_up), c2(h_lo), side_c)
    d_eye = torch.maximum(torch.maximum(yu - w.ys, w.ys - yl), edx)
    canvas.paint_sides(w, w.cov(d_eye), torch.tensor([0.95, 0.94, 0.91]).expand(B, 3),
                       (_LABEL["r_eye"], _LABEL["l_eye"]))
    r_iris = ((w.xs - c2(ex)).square() + (w.ys - c2(ey) - 0.002).square()).sqrt_()
    iris_cov = w.cov(torch.maximum(r_iris - c2((0.034 * (0.85 + 0.15 * fw))[:, None].expand(B, 2)), d_eye))
    pupil_cov = w.cov(torch.maximum(r_iris - 0.014, d_eye))
    for s in range(2):
        canvas.paint(w, iris_cov[:, s], ident["iris"])
        canvas.paint(w, pupil_cov[:, s], torch.full((B, 3), 0.03))
    lash = w.cov(torch.maximum((w.ys - yu).abs() - 0.006 - 0.004 * (1 - c2(closed)), edx + 0.004)).amax(1)
    canvas.darken(w, lash, 0.75)
    # the lower lid line: darker and thicker when the lid is tightened (AU7), an identity-free cue
    au7 = c2(au2("AU7"))
    lid_lo = w.cov(torch.maximum((w.ys - yl).abs() - 0.003 - 0.004 * au7, edx + 0.01))
    canvas.darken(w, (lid_lo * (0.25 + 0.45 * au7)).amax(1), 1.0)

    # --- brows -----------------------------------------------------------------------------------------
    b_in = 0.085 - 0.03 * au2("AU4") - 0.006 * au2("AU9")
    by = ident["brow_y"][:, None]
    y_in = by - 0.08 * au2("AU1") + 0.045 * au2("AU4") + 0.015 * au2("AU9")
    y_out = by - 0.07 * au2("AU2") + 0.02 * au2("AU4") - 0.015 * au2("AU1")
    bz = torch.full((B, 2), 0.3)
    bx_in, by_in = proj2(sign * b_in, y_in, bz)
    bx_out, by_out = proj2(sign * 0.31, y_out, bz)
    brow_th = (ident["brow_th"] * (1 + 0.3 * male) * (1 + 0.8 * bushy))[:, None].expand(B, 2)
    arch = ident["brow_arch"][:, None] * (1 + 0.5 * au2("AU2")) * (1 - 0.5 * au2("AU4"))
    w = grid.window(bx_out[:, 0] - 0.03, bx_out[:, 1] + 0.03,
                    torch.minimum(by_in, by_out).amin(1) - arch.amax(1) - brow_th.amax(1) - 0.02,
                    torch.maximum(by_in, by_out).amax(1) + brow_th.amax(1) + 0.02)
    span = c2(bx_out - bx_in)
    sp = ((w.xs - c2(bx_in)) / span)
    spc = sp.clamp(0, 1)
    yc = _brow_centre(spc, c2(bx_in), c2(by_in), c2(bx_out), c2(by_out), c2(arch))
    d_brow = torch.maximum((w.ys - yc).abs() - c2(brow_th) * (1 - 0.45 * spc) / 2, ((sp - 0.5).abs() - 0.5) * span.abs())
    canvas.paint_sides(w, w.cov(d_brow), brow_col, (_LABEL["r_brow"], _LABEL["l_brow"]), hair_tex=0.15)

    # --- wrinkles and folds: texture only, they change no label ------------------------------------------
    def wrinkle(x0, x1, y0, y1, dist_fn, strength, skin_only=True):
        ww = grid.window(x0, x1, y0, y1)
        cv = ww.cov(dist_fn(ww.x, ww.y))
        if skin_only:
            cv = cv * canvas.label_is(ww, "skin")
        canvas.darken(ww, cv, c(strength))

    brow_mid = by.mean(1)
    forehead = torch.maximum(au("AU1"), au("AU2"))
    for dy in (0.10, 0.16):
        wrinkle(-0.2, 0.2, brow_mid - dy - 0.03, brow_mid - dy + 0.02,
                lambda X, Y, dy=dy: _stroke(X, Y, 0.0, c(brow_mid - dy), 0.16, 0.010, curv=0.35),
                0.25 * forehead + 0.12 * old)
    for sgn in (-1.0, 1.0):  # vertical lines between the brows (AU4)
        wrinkle(nose_top_x - 0.06, nose_top_x + 0.06, brow_mid - 0.03, brow_mid + 0.07,
                lambda X, Y, sgn=sgn: _stroke(Y, X, c(brow_mid + 0.02), c(nose_top_x + sgn * 0.022), 0.04, 0.010,
                                              slope=-0.15 * sgn), 0.35 * au("AU4"), skin_only=False)
    for dy in (0.045, 0.075):  # nose wrinkles (AU9)
        wrinkle(nose_top_x - 0.04, nose_top_x + 0.04, nose_top_y + dy - 0.02, nose_top_y + dy + 0.01,
                lambda X, Y, dy=dy: _stroke(X, Y, c(nose_top_x), c(nose_top_y + dy), 0.03, 0.010, curv=-4.0),
                0.4 * au("AU9"), skin_only=False)
    fold = 0.22 * au2("AU12") + 0.12 * au2("AU6") + 0.25 * au2("AU10") + 0.2 * au2("AU9") + 0.08 * old[:, None]
    for s, sgn in enumerate((-1.0, 1.0)):
        # nasolabial fold from the nose wing to past the mouth corner
        fx0 = tip_x + sgn * (nostril_dx + 0.07 + 0.02 * au2("AU12")[:, s])
        fy0, hl = (tip_y + m_y) / 2 + 0.01, (m_y - tip_y) / 2 + 0.02
        wrinkle(fx0 - 0.12, fx0 + 0.12, fy0 - hl - 0.02, fy0 + hl + 0.02,
                lambda X, Y, fx0=fx0, fy0=fy0, hl=hl, sgn=sgn: _stroke(Y, X, c(fy0), c(fx0), c(hl), 0.012,
                                                                       curv=sgn * 1.2, slope=sgn * 0.35),
                fold[:, s])
        # crow's feet (AU6, age)
        cx_ = ex[:, s] + sgn * (ew[:, s] + 0.04)
        for slope in (-0.6, 0.0, 0.6):
            wrinkle(cx_ - 0.03, cx_ + 0.03, ey[:, s] - 0.01, ey[:, s] + 0.03,
                    lambda X, Y, cx_=cx_, slope=slope, s=s, sgn=sgn: _stroke(X, Y, c(cx_), c(ey[:, s] + 0.01), 0.025,
                                                                             0.009, slope=slope * sgn),
                    0.3 * au2("AU6")[:, s] + 0.1 * old)
        # dimple at the mouth corner (AU14) and eye bags (age, AU6)
        kx, ky = m_x + sgn * half_w[:, s] + sgn * 0.02, m_y + corner_dy[:, s] - 0.005
        wrinkle(kx - 0.02, kx + 0.02, ky - 0.03, ky + 0.03,
                lambda X, Y, kx=kx, ky=ky: _superellipse(X, Y, c(kx), c(ky), 0.015, 0.032), 0.85 * au2("AU14")[:, s])
        # marionette line below the lip corner, pulled down by AU15 (it also shows when AU12 cancels the
        # corner's drop)
        mx_, my_ = m_x + sgn * (half_w[:, s] + 0.01), m_y + corner_dy[:, s] + 0.06
        wrinkle(mx_ - 0.04, mx_ + 0.04, my_ - 0.06, my_ + 0.06,
                lambda X, Y, mx_=mx_, my_=my_, sgn=sgn: _stroke(Y, X, c(my_), c(mx_), 0.045, 0.010, slope=-sgn * 0.2),
                0.45 * au2("AU15")[:, s])
        bx_, by_ = ex[:, s], ey[:, s] + h_lo[:, s] + 0.03
        wrinkle(bx_ - 0.06, bx_ + 0.06, by_ - 0.01, by_ + 0.015,
                lambda X, Y, bx_=bx_, by_=by_: _stroke(X, Y, c(bx_), c(by_), 0.05, 0.007, curv=2.0),
                0.18 * old + 0.1 * au2("AU6")[:, s])
        # tension line under the tightened lower lid (AU7): straight, close to the lid, unlike AU6's bags
        ty_ = ey[:, s] + h_lo[:, s] + 0.012
        wrinkle(bx_ - 0.06, bx_ + 0.06, ty_ - 0.01, ty_ + 0.01,
                lambda X, Y, bx_=bx_, ty_=ty_: _stroke(X, Y, c(bx_), c(ty_), 0.045, 0.006, curv=0.5),
                0.4 * au2("AU7")[:, s])
    cy_ = m_y + 0.14 + 0.07 * au("AU26")  # chin raiser (AU17)
    wrinkle(m_x - 0.05, m_x + 0.05, cy_ - 0.01, cy_ + 0.01,
            lambda X, Y: _stroke(X, Y, c(m_x), c(cy_), 0.05, 0.016, curv=3.0), 0.45 * au("AU17"))

    # --- hair in front: hairline or bangs -------------------------------------------------------------
    w = grid.window(-hrx - 0.05, hrx + 0.05, -1.0, -0.1)
    xw, yw = w.x, w.y
    hairline = -0.50 + 0.33 * (xw / c(hrx)).square()
    fringe = torch.maximum(c(brow_mid) - 0.045 + 0.012 * torch.sin(xw * 45), hairline)
    top = torch.where(c(at("Bangs")) > 0, fringe, hairline)
    d_front = torch.maximum(d_head[:, w.rows, w.cols] - 0.02, yw - top)
    canvas.paint(w, w.cov(d_front) * c(1 - bald), hair, _LABEL["hair"], hair_tex=0.22)

    # --- glasses ---------------------------------------------------------------------------------------
    glasses = at("Eyeglasses")
    w = grid.window(-(hrx * fw) - 0.02, hrx * fw + 0.02, ey.amin(1) - 0.12, ey.amax(1) + 0.1)
    gx, gy = c2(ex), c2(ey - 0.008)
    d_lens = _superellipse(w.xs, w.ys, gx, gy, c2(0.125 * fw[:, None].expand(B, 2)), 0.082, 4.0)
    bridge = _stroke(w.x, w.y, c(nose_top_x), c(ey.mean(1) - 0.03), c((ex[:, 1] - ex[:, 0]) / 2 - 0.12), 0.014,
                     curv=2.0)
    arms = torch.maximum((w.ys - gy + 0.03).abs() - 0.006,
                         torch.maximum(side_c * (gx - w.xs) + 0.12, side_c * w.xs - (hrx * fw).view(B, 1, 1, 1)))
    d_glass = torch.minimum(torch.minimum(d_lens.abs() - 0.011, arms).amin(1), bridge)
    lens_cov = w.cov(d_lens).amax(1) * c(glasses)
    lens_keep = canvas.label_is(w, "l_eye", "r_eye", "l_brow", "r_brow")
    img_w = canvas.img[:, :, w.rows, w.cols]
    img_w.add_((lens_cov * 0.15).unsqueeze(1) * (torch.tensor([0.8, 0.85, 0.9]).view(1, 3, 1, 1) - img_w))
    canvas.label[:, w.rows, w.cols].masked_fill_((lens_cov > 0.5) & ~lens_keep, _LABEL["eye_g"])
    canvas.paint(w, w.cov(d_glass) * c(glasses), ident["glasses_colour"], _LABEL["eye_g"])

    # --- light, texture, output ---------------------------------------------------------------------
    amb, dif = _LIGHT_LEVELS[light_class].unbind(1)
    face_region = full.cov(d_head - 0.05)
    shade = c(amb) + c(dif) * (face_region * lambert + (1 - face_region) * c(ldz * 0.8 + 0.1))
    fl = c(flat.float())
    shade = shade * (1 - fl) + c(amb + dif * 0.75) * fl
    fine, streak = _textures()
    tex = (canvas.tex[:, 0] * _crop_texture(fine, tex_offset, S)
           + canvas.tex[:, 1] * _crop_texture(streak, tex_offset.flip(1), S)) * (1 - fl)
    img = canvas.img.mul_((shade * (1 + tex)).mul_(2).unsqueeze(1)).clamp_(0, 2).sub_(1)

    # --- landmarks (iBUG-300W order), from the same curves ----------------------------------------------
    lm = torch.zeros(B, 68, 2)
    delta = 0.12  # jaw 0-16: along the head outline from the image left, round the chin
    phi = (math.pi + delta) - torch.arange(17) * (math.pi + 2 * delta) / 16
    cphi, sphi = phi.cos()[None], phi.sin()[None]
    ry_j = torch.where(sphi > 0, jaw_ry[:, None], ident["head_ry_top"][:, None])
    qq = torch.where(sphi > 0, jaw_q[:, None], torch.full_like(jaw_q[:, None], 2.0))
    lm[:, 0:17, 0] = hrx[:, None] * cphi.sign() * cphi.abs().pow(2 / qq)
    lm[:, 0:17, 1] = ry_j * sphi.sign() * sphi.abs().pow(2 / qq)
    spts = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])  # brows: 17-21 outer to inner, 22-26 inner to outer
    for s, (lo, order) in enumerate(((17, spts), (22, spts.flip(0)))):
        bxi, byi, bxo, byo, ar = (t[:, s:s + 1] for t in (bx_in, by_in, bx_out, by_out, arch))
        lm[:, lo:lo + 5, 0] = bxi + (bxo - bxi) * order
        lm[:, lo:lo + 5, 1] = _brow_centre(order[None], bxi, byi, bxo, byo, ar)
    fr = torch.tensor([0.08, 0.38, 0.68, 0.98])[None]  # nose bridge 27-30, nose bottom 31-35
    lm[:, 27:31, 0] = nose_top_x[:, None] + fr * (tip_x - nose_top_x)[:, None]
    lm[:, 27:31, 1] = nose_top_y[:, None] + fr * (tip_y - nose_top_y)[:, None]
    nb = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])[None]
    lm[:, 31:36, 0] = tip_x[:, None] + nb * (nostril_dx + 0.012)[:, None]
    lm[:, 31:36, 1] = tip_y[:, None] + 0.008 - 0.012 * nb.abs()
    te = torch.tensor([-1.0, -0.33, 0.33, 1.0, 0.33, -0.33])  # eyes: corner, upper x2, corner, lower x2
    upper = torch.tensor([False, True, True, False, False, False])
    for s, lo in enumerate((36, 42)):
        X = ex[:, s:s + 1] + te[None] * ew[:, s:s + 1]
        yu_, yl_, _ = _eye_curves(X, ex[:, s:s + 1], ey[:, s:s + 1], ew[:, s:s + 1], h_up[:, s:s + 1],
                                  h_lo[:, s:s + 1], sign[s])
        lm[:, lo:lo + 6, 0] = X
        lm[:, lo:lo + 6, 1] = torch.where(upper[None], yu_, yl_)
    to = torch.tensor([-1.0, -0.66, -0.33, 0.0, 0.33, 0.66, 1.0, 0.66, 0.33, 0.0, -0.33, -0.66])
    ti = torch.tensor([-0.92, -0.5, 0.0, 0.5, 0.92, 0.5, 0.0, -0.5])
    hw1, cdy1 = (half_w[:, 0:1], half_w[:, 1:2]), (corner_dy[:, 0:1], corner_dy[:, 1:2])
    lip1 = {k: val.view(B, 1) for k, val in lip.items()}
    for lo, tt, n_up, outer in ((48, to, 7, True), (60, ti, 5, False)):  # lips 48-59 outer, 60-67 inner
        X = m_x[:, None] + torch.where(tt[None] < 0, tt[None] * hw1[0], tt[None] * hw1[1])
        yuo_, yui_, yli_, ylo_, _ = _mouth_curves(X, m_x[:, None], m_y[:, None], hw1, cdy1, lip1)
        up = torch.arange(len(tt))[None] < n_up
        lm[:, lo:lo + len(tt), 0] = X
        lm[:, lo:lo + len(tt), 1] = torch.where(up, yuo_ if outer else yui_, ylo_ if outer else yli_)
    landmarks = torch.stack(grid.to_pixels(lm[..., 0], lm[..., 1]), -1)

    effective = attrs.clone()
    effective[:, _T["Mouth_Slightly_Open"]] = ((gap + 0.5 * lip["raise_u"]) > _MOUTH_OPEN_GAP).float()
    return {"image": img, "mask": canvas.label, "landmarks": landmarks, "attributes": effective}


# ---------------------------------------------------------------------------------------------------
# Public rendering API


def _rows(x, width: int | None, name: str, dtype=torch.float32) -> torch.Tensor | None:
    """A batch of rows from a scalar, a vector or a matrix; None stays None."""
    if x is None:
        return None
    t = torch.as_tensor(x, dtype=dtype)
    if width is None:
        return t.reshape(-1)
    t = t.reshape(1, -1) if t.dim() == 1 else t
    if t.dim() != 2 or t.shape[1] != width:
        raise ValueError(f"{name} needs {width} values per sample; got shape {tuple(torch.as_tensor(x).shape)}")
    return t


def _broadcast(n: int, t: torch.Tensor, name: str) -> torch.Tensor:
    if t.shape[0] == n:
        return t
    if t.shape[0] == 1:
        return t.expand(n, *t.shape[1:]).clone()
    raise ValueError(f"{name} has {t.shape[0]} rows but the batch has {n} samples")


def _integer(value, name: str, what: str) -> int:
    """``value`` as an int (Python or numpy); a TypeError naming ``name`` for a float, a string, a bool..."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    fix = ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        fix = f"; write {name}={int(value)}"
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        fix = f"; write {name}={int(value)}, not the string {value!r}"
    raise TypeError(f"{name} must be an int ({what}); got {value!r} ({type(value).__name__}){fix}")


def _check_size(size) -> int:
    size = _integer(size, "size", f"the image side in pixels, {MIN_SIZE} to {MAX_SIZE}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"SynthFaces renders square images of {MIN_SIZE} to {MAX_SIZE} pixels; got size={size!r}")
    return size


def _finite(values, name: str, count: int, what: str) -> list[float]:
    """``count`` finite numbers (``what`` they mean, for the errors)."""
    items = np.atleast_1d(np.asarray(values, dtype=object)).tolist()
    numbers = "a number" if count == 1 else f"{count} numbers"
    try:
        if any(isinstance(v, (str, bytes)) for v in items):
            raise TypeError
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {numbers} ({what}); got {values!r}") from None
    if len(out) != count:
        raise ValueError(f"{name} must be {numbers} ({what}); got {len(out)}: {values!r}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be {'a finite number' if count == 1 else f'{count} finite numbers'} ({what}); "
                         f"got {values!r}: NaN or infinity is no range or probability to draw samples from")
    return out


def _check_draws(pose_range, flat_fraction, lighting_probs) -> None:
    """The ranges and probabilities SynthFaces draws its samples' pose, style and lighting from."""
    pose = _finite(pose_range, "pose_range", 3, "maximum |yaw|, |pitch|, |roll| in degrees")
    if min(pose) < 0:
        raise ValueError(f"pose_range holds maxima of |yaw|, |pitch|, |roll| in degrees, so none is negative; "
                         f"got {pose_range!r}")
    flat = _finite(flat_fraction, "flat_fraction", 1, "the share of samples in the flat style")[0]
    if not 0 <= flat <= 1:
        raise ValueError(f"flat_fraction is a share of the samples, in [0, 1]; got {flat_fraction!r}")
    probs = _finite(lighting_probs, "lighting_probs", len(L.LIGHTING),
                    f"the probabilities of the lighting classes {', '.join(L.LIGHTING)}")
    if min(probs) < 0 or abs(sum(probs) - 1) > 1e-6:
        raise ValueError(f"lighting_probs needs {len(L.LIGHTING)} probabilities summing to 1 "
                         f"({', '.join(L.LIGHTING)}), none negative; got {lighting_probs!r}")


def _expression_indices(expression) -> torch.Tensor:
    return torch.as_tensor([L.expression_index(e) if isinstance(e, str) else int(e)
                            for e in np.atleast_1d(np.asarray(expression, dtype=object))], dtype=torch.long)


def _unilateral(expression: torch.Tensor) -> torch.Tensor:
    """The ``lateral`` rows of expressions: contempt puts AU12 and AU14 on one side only."""
    lateral = torch.zeros(len(expression), len(L.AUS))
    for name in ("AU12", "AU14"):
        lateral[:, _A[name]] = (expression == L.EXPRESSIONS.index("contemptuous")).float()
    return lateral


def render(identity, aus=None, attributes=None, pose=None, lighting=None, style="photo", size: int = 64,
           seed: int = 0, expression=None, framing=None, light_dir=None, lateral=None, texture_offset=None,
           background: str = "identity"):
    """Render identities with any target: the paired ground truth of an edit.

    Every argument is one value for the whole batch or one row per sample; the batch size is the
    largest number of rows given.

    Args:
        identity: identity id(s) (splits: train 0..., val 100000..., test 200000...).
        aus: (17,) or (B, 17) AU intensities in [0, 1] (``labels.AUS`` order); default: the prototype of
            ``expression`` if given, else neutral.
        attributes: (13,) or (B, 13) target attributes (``labels.ATTRIBUTES``); default: the identity's own.
            The vector is made consistent first (one hair colour, no beard on a woman...); the result's
            ``attributes`` are those rendered, Mouth_Slightly_Open read back from the mouth.
        expression: name(s) or index(es) in ``labels.EXPRESSIONS``.
        pose: yaw, pitch, roll in degrees; framing: (scale, shift x, shift y) of the picture;
        lighting: class name(s) or index(es) in ``labels.LIGHTING``; light_dir: vector towards the
            light (x right, y down, z to the camera); style: "photo" or "flat" (or one per sample);
        lateral: (B, 17) in [-1, 1]: +1 puts an AU on the subject's left side only (contempt).
        background: "identity" (the person's own backdrop colour) or "studio" (:data:`STUDIO_BACKGROUND`).

    Returns a dict of batched tensors: image (B,3,S,S) in [-1,1], mask (B,S,S) int64 (CelebAMask-HQ
    order), landmarks (B,68,2) in pixels (iBUG-300W order), aus, attributes, identity.
    """
    size = _check_size(size)
    rows = {
        "identity": _rows(identity, None, "identity", torch.long),
        "expression": None if expression is None else _expression_indices(expression),
        "aus": _rows(aus, len(L.AUS), "aus"),
        "attributes": _rows(attributes, len(L.ATTRIBUTES), "attributes"),
        "pose": _rows(pose, 3, "pose"), "framing": _rows(framing, 3, "framing"),
        "light_dir": _rows(light_dir, 3, "light_dir"), "lateral": _rows(lateral, len(L.AUS), "lateral"),
        "texture_offset": _rows(texture_offset, 2, "texture_offset", torch.long),
        "lighting": None if lighting is None else _lighting_index(lighting),
        "flat": _style_flags(style),
    }
    n = max(len(t) for t in rows.values() if t is not None)
    r = {k: None if t is None else _broadcast(n, t, k) for k, t in rows.items()}
    ids, e = r["identity"], r["expression"]
    aus = r["aus"] if r["aus"] is not None else (L.PROTOTYPES[e] if e is not None else torch.zeros(n, len(L.AUS)))
    lateral = r["lateral"] if r["lateral"] is not None else (
        _unilateral(e) if e is not None else torch.zeros(n, len(L.AUS)))
    attrs = r["attributes"] if r["attributes"] is not None else identity_attributes(ids, seed)
    pick = lambda k, default: r[k] if r[k] is not None else default  # noqa: E731
    out = _render_batch(ids, attrs, aus, lateral, pick("pose", torch.zeros(n, 3)),
                        pick("framing", torch.tensor([[1.0, 0.0, 0.0]]).expand(n, 3)),
                        pick("lighting", torch.zeros(n, dtype=torch.long)),
                        pick("light_dir", torch.tensor([[0.35, -0.45, 0.82]]).expand(n, 3)), r["flat"],
                        pick("texture_offset", torch.zeros(n, 2, dtype=torch.long)), size, seed,
                        mouth_from_attributes=attributes is not None, background=background)
    if e is not None:
        out["expression"] = e
    return out


def _lighting_index(lighting) -> torch.Tensor:
    vals = [L.LIGHTING.index(v) if v in L.LIGHTING else v for v in np.atleast_1d(np.asarray(lighting, dtype=object))]
    if any(not isinstance(v, (int, np.integer)) or v not in range(len(L.LIGHTING)) for v in vals):
        raise ValueError(f"lighting must be one of {L.LIGHTING} or their indices; got {lighting!r}")
    return torch.as_tensor([int(v) for v in vals], dtype=torch.long)


def _style_flags(style) -> torch.Tensor:
    vals = list(np.atleast_1d(np.asarray(style, dtype=object)))
    for v in vals:
        if v not in L.STYLES:
            raise ValueError(f"style must be one of {L.STYLES}; got {v!r}")
    return torch.as_tensor([v == "flat" for v in vals])


def _render_batch(ids, attrs, aus, lateral, pose, framing, light_class, light_dir, flat, tex_offset, size, seed,
                  mouth_from_attributes: bool, background: str = "identity"):
    """Render with consistent attributes; ``mouth_from_attributes`` makes a given Mouth_Slightly_Open
    open or close the lips (otherwise the AUs decide and the attribute is read back from the mouth).
    ``background``: "identity" (each person's own backdrop colour) or "studio" (:data:`STUDIO_BACKGROUND`)."""
    attrs = _normalise_attributes(attrs)
    aus = _apply_mouth_attribute(aus.clamp(0, 1), attrs[:, _T["Mouth_Slightly_Open"]] if mouth_from_attributes
                                 else None)
    light_dir = light_dir / light_dir.norm(dim=1, keepdim=True).clamp(min=1e-6)
    shape = _identity_shape(ids, seed)
    if background == "studio":
        shape["bg"] = STUDIO_BACKGROUND.expand(len(ids), 3)
    elif background != "identity":
        raise ValueError(f"background must be 'identity' or 'studio'; got {background!r}")
    with torch.no_grad():
        out = _render_core(shape, attrs, aus, lateral, pose, framing, light_class,
                           light_dir, flat, tex_offset, size)
    out["mask"] = out["mask"].long()
    out["image"] = ((out["image"] + 1) * 127.5).round_().div_(127.5).sub_(1)  # 8-bit, like real data sets
    out["aus"] = aus
    out["identity"] = ids.clone()
    return out


# ---------------------------------------------------------------------------------------------------
# The data set


_SCALAR_KEYS = ("identity", "expression", "lighting")


def _row(out: dict, i: int) -> dict:
    """Sample ``i`` of a rendered batch (images and masks may be stored as uint8) as a sample dict."""
    s = {key: int(val[i]) if key in _SCALAR_KEYS else val[i] if key == "style" else val[i].clone()
         for key, val in out.items()}
    if s["image"].dtype == torch.uint8:
        s["image"] = s["image"].float() / 127.5 - 1
    s["mask"] = s["mask"].long()
    return s


def _expression_aus(expression: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """AUs of expression prototypes at a per-sample intensity (0.65-1), jittered per AU (0.85-1.15),
    with small noise on the AUs the prototype leaves at rest; ``u`` are the sample's uniforms."""
    proto = L.PROTOTYPES[expression]
    return torch.where(proto > 0, proto * (0.65 + 0.35 * u[:, 0:1]) * (0.85 + 0.3 * u[:, 1:18]),
                       0.08 * u[:, 18:35] ** 2).clamp(0, 1)


class SynthFaces(Dataset):
    """The SynthFaces data set: deterministic, identity-disjoint splits of rendered faces.

    Sample ``k`` shows identity ``k % n_identities`` with expression ``(k // n_identities) % 8`` (so
    every identity appears with every expression and classes are balanced), at a per-sample intensity,
    pose, lighting and texture.

    Args:
        split: "train", "val" or "test" (identity-disjoint).
        size: image size in pixels, 32-256 (64 in the ``cpu`` profile, 128 in ``paper``).
        n: number of samples; default 16 per identity.
        seed: the data set seed; identities and samples are functions of it.
        n_identities: identities in the split (default 200 train, 40 val, 40 test).
        au_mode: "expression" (FACS prototypes, scaled per sample, small noise on the other AUs),
            "random" (free random AU vectors, expression = labels.NO_EXPRESSION) or "mixed" (half each).
        pose_range: maximum |yaw|, |pitch|, |roll| in degrees.
        flat_fraction: share of samples rendered in the untextured "flat" style.
        lighting_probs: probabilities of the lighting classes normal / weak / dark.
        background: "identity" (each person's own backdrop colour, the default) or "studio" (one backdrop
            for everybody, :data:`STUDIO_BACKGROUND`, as in RaFD; the expression-translation protocol).
        cache_chunks: how many rendered chunks of ``chunk`` samples to keep in memory.
    """

    def __init__(self, split: str = "train", size: int = 64, n: int | None = None, seed: int = 0,
                 n_identities: int | None = None, au_mode: str = "expression",
                 pose_range: Sequence[float] = (15.0, 8.0, 6.0), flat_fraction: float = 0.0,
                 lighting_probs: Sequence[float] = (0.7, 0.2, 0.1), background: str = "identity",
                 chunk: int = 256, cache_chunks: int = 64):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        size = _check_size(size)
        if au_mode not in ("expression", "random", "mixed"):
            raise ValueError(f"au_mode must be 'expression', 'random' or 'mixed'; got {au_mode!r}")
        _check_draws(pose_range, flat_fraction, lighting_probs)
        if background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}; got {background!r}")
        self.split, self.size, self.seed, self.background = split, size, seed, background
        default = _DEFAULT_N_IDENTITIES[split]
        self.n_identities = self._count(n_identities, "n_identities", "people in the split",
                                        f"for the split's default ({default}), pass None or leave it out",
                                        default=default)
        self.n = self._count(n, "n", "samples", "for 16 per identity, pass None or leave it out",
                             default=16 * self.n_identities)
        self.chunk = self._count(chunk, "chunk", "samples rendered together when indexed one at a time",
                                 "the default is 256", default=256)
        self.cache_chunks = self._count(cache_chunks, "cache_chunks", "rendered chunks kept in memory",
                                        "0 keeps none", default=64, minimum=0)
        self.au_mode = au_mode
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self.params = self._sample_params(torch.arange(self.n), pose_range, flat_fraction, lighting_probs)

    @staticmethod
    def _count(value, name: str, what: str, hint: str, *, default: int, minimum: int = 1) -> int:
        """An int argument (None: ``default``); 0 or a negative count is an error, never the default."""
        if value is None:
            return default
        value = _integer(value, name, what)
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum} ({what}); got {value}: {hint}")
        return value

    @property
    def identities(self) -> torch.Tensor:
        """The identity ids of this split."""
        return _IDENTITY_OFFSET[self.split] + torch.arange(self.n_identities)

    def _sample_params(self, k: torch.Tensor, pose_range, flat_fraction, lighting_probs) -> dict:
        u = hash_uniform(k.numpy(), self._stream, 64, self.seed)
        identity = _IDENTITY_OFFSET[self.split] + k % self.n_identities
        expression = (k // self.n_identities) % len(L.EXPRESSIONS)
        aus = _expression_aus(expression, u)
        random_aus = torch.where(u[:, 35:52] < 0.3, 0.2 + 0.8 * u[:, 18:35], 0.08 * u[:, 18:35] ** 2)
        use_random = {"expression": torch.zeros(len(k), dtype=torch.bool),
                      "random": torch.ones(len(k), dtype=torch.bool),
                      "mixed": u[:, 52] < 0.5}[self.au_mode]
        aus = torch.where(use_random[:, None], random_aus, aus).clamp(0, 1)
        expression = torch.where(use_random, torch.full_like(expression, L.NO_EXPRESSION), expression)
        pose = (u[:, 53:56] * 2 - 1) * torch.as_tensor(pose_range, dtype=torch.float32)
        framing = torch.stack([0.94 + 0.12 * u[:, 56], 0.06 * u[:, 57] - 0.03, 0.06 * u[:, 58] - 0.03], 1)
        cum = torch.cumsum(torch.as_tensor(lighting_probs, dtype=torch.float32), 0)
        light_class = (u[:, 59:60] >= cum[None, :-1]).sum(1)
        az, el = (u[:, 60] * 2 - 1) * 0.9, 0.2 + 0.6 * u[:, 61]
        light_dir = torch.stack([az.sin() * el.cos(), -el.sin(), az.cos() * el.cos()], 1)
        return {"identity": identity, "expression": expression, "aus": aus, "lateral": _unilateral(expression),
                "pose": pose, "framing": framing, "lighting": light_class, "light_dir": light_dir,
                "flat": u[:, 62] < flat_fraction,
                "texture_offset": (hash_uniform(k.numpy(), self._stream + 1, 2, self.seed) * _TEX).long()}

    @property
    def _stream(self) -> int:
        return {"train": 10, "val": 20, "test": 30}[self.split]

    def __len__(self) -> int:
        return self.n

    def batch(self, indices) -> dict:
        """Render the samples ``indices`` as one batch of tensors (the fast path for training loops)."""
        return self.render_targets(indices)

    def render_targets(self, indices, expression=None, aus=None, attributes=None) -> dict:
        """Samples ``indices`` re-rendered with a target expression, AUs or attributes, everything else
        (identity, pose, light, texture, expression intensity) unchanged: the ground truth of an edit.

        A target expression keeps the sample's own intensity: its AUs are the target's prototype scaled
        as the source's was. Without targets this renders the samples themselves.
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"sample indices must lie in 0..{self.n - 1}; got {idx.min()}..{idx.max()}")
        p = {key: val[idx] for key, val in self.params.items()}
        n = len(idx)
        e, lateral = p["expression"], p["lateral"]
        if expression is not None:
            e = _broadcast(n, _expression_indices(expression), "expression")
            aus = _expression_aus(e, hash_uniform(idx.numpy(), self._stream, 64, self.seed))
            lateral = _unilateral(e)
        aus = p["aus"] if aus is None else _broadcast(n, _rows(aus, len(L.AUS), "aus"), "aus")
        attrs = identity_attributes(p["identity"], self.seed) if attributes is None else \
            _broadcast(n, _rows(attributes, len(L.ATTRIBUTES), "attributes"), "attributes")
        out = _render_batch(p["identity"], attrs, aus, lateral, p["pose"], p["framing"], p["lighting"],
                            p["light_dir"], p["flat"], p["texture_offset"], self.size, self.seed,
                            mouth_from_attributes=attributes is not None, background=self.background)
        out.update(expression=e, pose=p["pose"], lighting=p["lighting"], light_dir=p["light_dir"],
                   style=[L.STYLES[int(f)] for f in p["flat"]])
        return out

    def _chunk(self, c: int) -> dict:
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        lo, hi = c * self.chunk, min(self.n, (c + 1) * self.chunk)
        out = self.batch(torch.arange(lo, hi))
        out["image"] = ((out["image"] + 1) * 127.5).round().to(torch.uint8)  # exact: images are 8-bit
        out["mask"] = out["mask"].to(torch.uint8)
        self._cache[c] = out
        if len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return out

    def __getitems__(self, indices) -> list[dict]:
        """A whole batch at once (the DataLoader calls this): rendered together unless already cached."""
        if all(int(k) // self.chunk in self._cache for k in indices):
            return [self[int(k)] for k in indices]
        out = self.batch(torch.as_tensor(indices, dtype=torch.long))
        return [_row(out, i) for i in range(len(indices))]

    def __getitem__(self, k: int) -> dict:
        if not -self.n <= k < self.n:
            raise IndexError(f"SynthFaces {self.split} has {self.n} samples; index {k} is out of range")
        k = k % self.n
        return _row(self._chunk(k // self.chunk), k % self.chunk)

    def __repr__(self) -> str:
        return (f"SynthFaces(split={self.split!r}, size={self.size}, n={self.n}, seed={self.seed}, "
                f"n_identities={self.n_identities}, au_mode={self.au_mode!r}, background={self.background!r})")
