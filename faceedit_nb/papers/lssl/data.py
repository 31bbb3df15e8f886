"""LSSL's data: SynthFaces faces whose attribute of interest (expression, yaw class, lighting class) is drawn per
sample, with their landmark heat maps (:func:`lssl_faces`, :class:`LSSLBatches`); the pose-normalisation pairs
(a flat "simulated" frontal render and a photo of the same face at 15-45 degrees); the ground truth of an edit
(:func:`true_edit`); and RaFD with 68-point ``.pts`` landmark files (:func:`read_pts`, :class:`RaFDLandmarks`)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ... import labels as L
from ...data.synthfaces import SynthFaces, hash_uniform
from ...train import epoch_indices
from .config import LSSLConfig
from .model import landmark_heatmap

__all__ = ["lssl_faces", "attribute_labels", "set_attribute", "true_edit", "LSSLBatches", "pose_pairs",
           "read_pts", "RaFDLandmarks"]

_STREAM = 4242  # hash stream of the per-sample attribute classes


def set_attribute(ds: SynthFaces, attribute: str, classes: torch.Tensor, signs: torch.Tensor | None = None) -> None:
    """Give the faces of ``ds`` the classes ``classes`` of ``attribute`` (in place, before rendering): a yaw
    class k renders at 15k degrees (times ``signs``, +-1), a lighting class as that class; an expression class
    takes that expression's AUs at each face's own intensity."""
    p = ds.params
    if attribute == "yaw":
        sign = torch.ones(len(classes)) if signs is None else signs.float()
        p["pose"] = p["pose"].clone()
        p["pose"][:, 0] = torch.as_tensor(L.YAW_ANGLES, dtype=torch.float32)[classes] * sign
    elif attribute == "lighting":
        p["lighting"] = classes.clone()
    elif attribute == "expression":
        u = hash_uniform(torch.arange(ds.n).numpy(), ds._stream, 64, ds.seed)
        proto = L.PROTOTYPES[classes]
        p["aus"] = torch.where(proto > 0, proto * (0.65 + 0.35 * u[:, 0:1]) * (0.85 + 0.3 * u[:, 1:18]),
                               0.08 * u[:, 18:35] ** 2).clamp(0, 1)
        p["expression"] = classes.clone()
        lateral = torch.zeros(len(classes), len(L.AUS))
        for name in ("AU12", "AU14"):
            lateral[:, L.AUS.index(name)] = (classes == L.EXPRESSIONS.index("contemptuous")).float()
        p["lateral"] = lateral
    else:
        raise ValueError(f"unknown attribute {attribute!r}")


def lssl_faces(cfg: LSSLConfig, split: str = "train", n: int | None = None, n_identities: int | None = None,
               seed: int | None = None) -> SynthFaces:
    """A SynthFaces split whose faces carry ``cfg.attribute``'s classes: each face's expression as SynthFaces
    draws it (classes balanced), or a yaw / lighting class drawn per face (balanced, hashed from its index), on
    RaFD's single studio backdrop."""
    n = cfg.n_train if n is None and split == "train" else (n or 320)
    n_identities = n_identities or (cfg.n_identities if split == "train" else max(1, n // 8))
    ds = SynthFaces(split, size=cfg.image_size, n=n, seed=cfg.data_seed if seed is None else seed,
                    n_identities=n_identities, background="studio",
                    pose_range=(0.0, 5.0, 4.0) if cfg.attribute == "yaw" else (8.0, 5.0, 4.0),
                    lighting_probs=(1.0, 0.0, 0.0) if cfg.attribute != "lighting" else (0.7, 0.2, 0.1))
    if cfg.attribute != "expression":
        u = hash_uniform(torch.arange(n).numpy(), _STREAM, 2, ds.seed)
        classes = torch.arange(n) % cfg.c_dim
        signs = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
        set_attribute(ds, cfg.attribute, classes, signs)
    return ds


def attribute_labels(ds: SynthFaces, attribute: str) -> torch.Tensor:
    """The class of every face of ``ds`` (as :func:`lssl_faces` set it)."""
    p = ds.params
    if attribute == "expression":
        return p["expression"].clone()
    if attribute == "lighting":
        return p["lighting"].clone()
    yaw = p["pose"][:, 0].abs()
    return (yaw[:, None] - torch.as_tensor(L.YAW_ANGLES, dtype=torch.float32)).abs().argmin(1)


def true_edit(ds: SynthFaces, indices: torch.Tensor, attribute: str, target: torch.Tensor) -> dict:
    """SynthFaces' ground truth of an edit: faces ``indices`` re-rendered with the target classes of
    ``attribute``, everything else (person, other attributes, framing, texture, light direction) kept."""
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    if attribute == "expression":
        return ds.render_targets(idx, expression=target)
    target = torch.as_tensor(target, dtype=torch.long).expand(len(idx))
    saved = {k: v.clone() for k, v in ds.params.items()}
    sign = saved["pose"][:, 0].sign().where(saved["pose"][:, 0] != 0, torch.ones(ds.n))
    out: dict = {}
    try:
        for t in target.unique():  # one class at a time: a face may be asked for several targets
            rows = (target == t).nonzero().flatten()
            classes = attribute_labels(ds, attribute)
            classes[idx[rows]] = t
            set_attribute(ds, attribute, classes, sign)
            for k, v in ds.batch(idx[rows]).items():
                if torch.is_tensor(v):
                    out.setdefault(k, v.new_empty((len(idx), *v.shape[1:])))[rows] = v
            ds.params.update({k: v.clone() for k, v in saved.items()})
    finally:
        ds.params.update(saved)
    return out


class LSSLBatches:
    """Training batches served by step number (nothing to save for resuming): the faces of :func:`lssl_faces`
    rendered once into memory (8-bit images, landmarks, classes), in the seeded epoch order of
    :func:`faceedit_nb.train.epoch_indices`, with random horizontal flips of face and landmarks (Sec. 4).
    Keys: ``image``, ``side`` (the heat map, or None without a side input), ``label``, ``index``; in pose
    normalisation ``image`` is the flat frontal render, ``side`` the photo profile and ``real`` the critic's
    photo faces (the profiles of other faces of the batch)."""

    def __init__(self, cfg: LSSLConfig):
        self.cfg = cfg
        if cfg.dataset == "rafd":
            self._load_rafd(cfg)
        elif cfg.task == "pose_normalisation":
            pairs = pose_pairs(cfg, "train", cfg.n_train, cfg.n_identities)
            self.images, self.profiles, self.labels = pairs["simulated"], pairs["profile"], pairs["expression"]
            self.landmarks = None
        else:
            self._render(lssl_faces(cfg))
        self.n = len(self.images)
        if cfg.batch_size > self.n:
            raise ValueError(f"batch_size {cfg.batch_size} exceeds the {self.n} training faces; lower batch_size")

    def _render(self, ds: SynthFaces) -> None:
        images, landmarks = [], []
        for lo in range(0, ds.n, 256):
            b = ds.batch(torch.arange(lo, min(ds.n, lo + 256)))
            images.append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
            landmarks.append(b["landmarks"].float())
        self.images, self.landmarks = torch.cat(images), torch.cat(landmarks)
        self.labels, self.profiles = attribute_labels(ds, self.cfg.attribute), None

    def _load_rafd(self, cfg: LSSLConfig) -> None:
        if cfg.task == "pose_normalisation":
            raise ValueError("pose normalisation needs a simulated frontal render of each person (a 3D face model "
                             "fit, Sec. 3.2): RaFD has none, so Table 3 is not testable on RaFD; use "
                             "dataset='synthfaces' (RaFD's 45 / 135-degree views train the 'yaw' model)")
        ds = RaFDLandmarks(cfg.data_root, "train", size=cfg.image_size, angles=cfg.rafd_angles)
        items = [ds[i] for i in range(len(ds))]
        self.images = torch.stack([((it["image"] + 1) * 127.5).round().to(torch.uint8) for it in items])
        self.landmarks = torch.stack([it["landmarks"] for it in items]).float()
        key = "expression" if cfg.attribute == "expression" else "yaw_class"
        self.labels, self.profiles = torch.tensor([it[key] for it in items]), None

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.cfg.batch_size

    def get(self, indices: torch.Tensor, flip: torch.Tensor | None = None) -> dict:
        cfg = self.cfg
        img = self.images[indices].float() / 127.5 - 1
        out = {"label": self.labels[indices], "index": indices}
        if self.profiles is not None:  # pose normalisation
            prof = self.profiles[indices].float() / 127.5 - 1
            if flip is not None:
                img = torch.where(flip[:, None, None, None], img.flip(-1), img)
                prof = torch.where(flip[:, None, None, None], prof.flip(-1), prof)
            out.update(image=img, side=prof if cfg.side_input else None, real=prof.roll(1, 0),
                       real_label=out["label"].roll(1, 0))
            return out
        side = landmark_heatmap(self.landmarks[indices], cfg.image_size, cfg.sigma_pixels) if cfg.side_input else None
        if flip is not None:
            img = torch.where(flip[:, None, None, None], img.flip(-1), img)
            if side is not None:
                side = torch.where(flip[:, None, None, None], side.flip(-1), side)
        out.update(image=img, side=side)
        return out

    def __call__(self, step: int) -> dict:
        idx = epoch_indices(step, self.cfg.batch_size, self.n, self.cfg.seed)
        flip = None
        if self.cfg.flip:
            g = torch.Generator().manual_seed(self.cfg.seed * 7_919 + 104_729 * step + 1)
            flip = torch.rand(len(idx), generator=g) < 0.5
        return self.get(idx, flip)


def pose_pairs(cfg: LSSLConfig, split: str, n: int, n_identities: int, *, yaw_class: int | None = None,
               seed: int | None = None) -> dict:
    """Pose normalisation's faces (Fig. 3b): each face as a flat ("simulated") frontal render under normal light,
    and as a photo at yaw 15, 30 or 45 degrees (the class ``yaw_class``, or drawn per face; left or right) with
    the same person, expression and framing. uint8 images, ``expression`` and ``yaw`` (degrees)."""
    ds = SynthFaces(split, size=cfg.image_size, n=n, n_identities=n_identities, background="studio",
                    seed=cfg.data_seed if seed is None else seed, pose_range=(0.0, 0.0, 0.0),
                    lighting_probs=(1.0, 0.0, 0.0))
    u = hash_uniform(torch.arange(n).numpy(), _STREAM + 1, 2, ds.seed)
    k = torch.full((n,), yaw_class) if yaw_class is not None else 1 + (u[:, 0] * 3).long().clamp(max=2)
    sign = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    out = {"simulated": [], "profile": [], "frontal": []}
    frontal_params = {key: v.clone() for key, v in ds.params.items()}
    ds.params["flat"] = torch.ones(n, dtype=torch.bool)
    simulated = ds.params
    photo = {**frontal_params, "pose": frontal_params["pose"].clone()}
    photo["pose"][:, 0] = torch.as_tensor(L.YAW_ANGLES, dtype=torch.float32)[k] * sign
    for name, params in (("simulated", simulated), ("profile", photo), ("frontal", frontal_params)):
        ds.params = params
        for lo in range(0, n, 256):
            b = ds.batch(torch.arange(lo, min(n, lo + 256)))
            out[name].append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
    result = {name: torch.cat(v) for name, v in out.items()}
    result.update(expression=frontal_params["expression"].clone(), yaw=photo["pose"][:, 0].clone())
    return result


# --- RaFD with landmarks ---------------------------------------------------------------------------------
def read_pts(path) -> torch.Tensor:
    """The 68 points of an iBUG ``.pts`` file (300-W's format: ``version: 1``, ``n_points: 68``, ``{``, one
    ``x y`` per line, ``}``) as a 68 x 2 tensor in the image's pixels."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise ValueError(f"{path}: not an iBUG .pts file (expected 'version: 1', 'n_points: 68', then the points "
                         "between '{' and '}')") from None
    header = dict(ln.split(":", 1) for ln in lines[:start] if ":" in ln)
    n_points = int(header.get("n_points", "-1").strip())
    rows = lines[start + 1:end]
    if n_points != 68 or len(rows) != 68:
        raise ValueError(f"{path}: LSSL's heat map needs the 68 iBUG points; the file says n_points "
                         f"{n_points} and has {len(rows)}")
    try:
        pts = np.array([[float(v) for v in r.split()] for r in rows], dtype=np.float32)
    except ValueError:
        raise ValueError(f"{path}: a point line is not two numbers 'x y'") from None
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"{path}: each of the 68 point lines must hold two finite numbers 'x y'")
    return torch.from_numpy(pts)


class RaFDLandmarks:
    """RaFD (:class:`faceedit_nb.data.RaFD`, its crop and identity split) with each image's 68 landmarks from the
    ``.pts`` file beside it (``Rafd090_01_Caucasian_female_angry_frontal.pts``; RaFD ships none: make them with
    any 68-point detector, e.g. dlib's shape_predictor_68), mapped through the crop to the resized image.
    Samples: ``image``, ``identity``, ``expression``, ``landmarks``, ``yaw_class`` (90 -> 0 deg, 45 / 135 ->
    45 deg)."""

    def __init__(self, root, split: str = "train", size: int = 128, *, angles=(90,), **kwargs):
        from ...data import RaFD
        self.base = RaFD(root, split, size=size, angles=angles, **kwargs)
        self.size = size
        missing = [p for p, _, _ in self.base.items if not p.with_suffix(".pts").is_file()]
        if missing:
            raise FileNotFoundError(
                f"RaFD: {len(missing)} of {len(self.base.items)} images under {root} have no .pts landmark file "
                f"(e.g. {missing[0].with_suffix('.pts').name}). LSSL's side image needs each face's 68 iBUG "
                "landmarks: write them beside the images in the 300-W .pts format (any 68-point detector, e.g. "
                "dlib's shape_predictor_68_face_landmarks)")
        angles_out = {abs(int(Path(p).stem.split("_")[0][4:]) - 90) for p, _, _ in self.base.items}
        unknown = sorted(a for a in angles_out if a not in L.YAW_ANGLES)
        if unknown:
            warnings.warn(f"RaFD: yaw {unknown} deg is not one of LSSL's classes {L.YAW_ANGLES}; those faces get "
                          "the nearest class", stacklevel=2)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image
        path = self.base.items[i][0]
        sample = self.base[i]
        with Image.open(path) as img:
            left, top, right, bottom = self.base._box(path, *img.size)
        pts = read_pts(path.with_suffix(".pts"))
        scale = torch.tensor([self.size / (right - left), self.size / (bottom - top)])
        # pixel i's centre at i (faceedit_nb.data.transforms): a resize by k maps x to (x + 0.5) k - 0.5
        sample["landmarks"] = (pts - torch.tensor([left, top], dtype=torch.float32) + 0.5) * scale - 0.5
        yaw = abs(int(path.stem.split("_")[0][4:]) - 90)
        sample["yaw_class"] = int(np.abs(np.array(L.YAW_ANGLES) - yaw).argmin())
        return sample

