"""Loaders for the real datasets of the papers, returning the SynthFaces sample format.

Every loader is a torch ``Dataset`` whose items are dicts with the keys of ``SynthFaces`` that the
dataset has (``image`` 3 x S x S in [-1, 1]; ``identity``; ``expression`` index into
``labels.EXPRESSIONS``; ``aus`` (17,) in [0, 1]; ``attributes`` 0/1; ``mask`` S x S in
``labels.PARSING_CLASSES`` order; ``landmarks`` (68, 2) in pixels of the S x S image).

Failures are loud: a missing folder or label file raises ``FileNotFoundError`` describing the official
layout; a malformed label line (a non-number, NaN, a code out of range) raises ``LabelFileError`` (file
and line number). Three kinds of bad sample raise by default and are dropped under ``on_corrupt="skip"``:
an image a label file lists that does not exist (``MissingImageError``, checked at construction), an
undecodable image (``CorruptImageError``), a sample whose files disagree with its labels (``SampleError``:
an AffectNet face box outside its photo, CelebAMask-HQ masks not of the image's square shape). With
``"skip"`` every sample is decoded once up front; the dropped ones are counted by reason in ``.skipped``,
named in ``.skipped_files`` and reported in one warning. An empty split raises ``ValueError``.
"""
from __future__ import annotations

import csv
import math
import numbers
import pickle
import random
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .. import labels
from .transforms import (CorruptImageError, center_crop_box, crop_resize, open_image, resize_mask,
                         scale_points, to_tensor)

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles GANimation's ``aus_openface.pkl`` (a dict of numpy arrays) and nothing else: any other
    class in the file is refused instead of being imported and run."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"aus_openface.pkl may hold only numpy arrays in a dict; it refers to "
                                     f"{module}.{name}, which is not loaded (re-create the file from the CSVs)")


__all__ = [
    "RaFD", "AffectNet", "CelebA", "CelebAMaskHQ", "OpenFaceAUs", "read_openface_csv",
    "read_attribute_file", "read_partition_file", "parse_rafd_filename", "merge_part_masks",
    "LabelFileError", "CorruptImageError", "MissingImageError", "SampleError", "AFFECTNET_EXPRESSIONS", "AFFECTNET_DROPPED", "RAFD_CROP",
    "RAFD_IMAGE_SIZE",
]


class LabelFileError(ValueError):
    """A malformed label file; the message names the file and the 1-based line number."""

    def __init__(self, path: str | Path, line: int, problem: str):
        super().__init__(f"{path}, line {line}: {problem}")
        self.path, self.line = Path(path), line


class MissingImageError(FileNotFoundError):
    """An image that a label file lists (or the part masks of a CelebAMask-HQ image) does not exist;
    dropped and counted under ``reason`` with ``on_corrupt="skip"``."""

    def __init__(self, message: str, reason: str = "missing image"):
        super().__init__(message)
        self.reason = reason


class SampleError(ValueError):
    """A sample whose files disagree with its labels (an AffectNet face box outside the photo, a
    CelebAMask-HQ mask of another shape than its image); dropped and counted under ``reason`` with
    ``on_corrupt="skip"``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


_SKIP_FIX = "or pass on_corrupt='skip' to drop such samples (counted in .skipped, named in .skipped_files)"


# --- shared machinery ------------------------------------------------------------------------------

_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
           "all": "all"}


def _split_name(split: str, allowed: Sequence[str], dataset: str) -> str:
    name = _SPLITS.get(str(split).lower())
    if name not in allowed:
        raise ValueError(f"{dataset}: unknown split {split!r}; choose one of {tuple(allowed)}")
    return name


def _missing(dataset: str, path: Path, what: str, layout: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{dataset}: {path} does not exist; it should be {what}.\n"
        f"Expected layout (as in the official distribution):\n{layout}\n"
        f"Fix: pass root= the folder laid out as above (download {dataset} from its authors), or write "
        f"a SynthFaces stand-in with faceedit_nb.data.export.export_synthfaces(root, ...).")


def _find(root: Path, *candidates: str) -> Path | None:
    """The first of ``root / candidate`` that exists."""
    for c in candidates:
        if (root / c).exists():
            return root / c
    return None


def _not_text(path: Path, err: UnicodeDecodeError) -> LabelFileError:
    line = path.read_bytes()[:err.start].count(b"\n") + 1  # the start offset is close enough
    return LabelFileError(path, line, "not a UTF-8 text file (binary or damaged?)")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from err


def _int(path: Path, line: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise LabelFileError(path, line, f"{what} should be an integer, got {text!r}") from None


def _name_list(value, what: str, dataset: str, example: str) -> tuple[str, ...]:
    """A list of names (attributes, gazes); a bare string is refused rather than split into letters."""
    if isinstance(value, str):
        raise TypeError(f"{dataset}: {what} takes a list of names, got the string {value!r}; write "
                        f"{what}=[{value!r}] (e.g. {what}={example})")
    return tuple(value)


def _examples(names: Sequence[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


class _FaceDataset(Dataset):
    """Items + image decoding + the corrupt-file policy; subclasses fill ``items`` and ``_sample``."""

    name = "dataset"
    layout = ""

    def __init__(self, root, size: int, on_corrupt: str):
        self.root = Path(root).expanduser()
        self.size = int(size)
        if self.size < 1:
            raise ValueError(f"{self.name}: size must be positive, got {size}")
        if on_corrupt not in ("raise", "skip"):
            raise ValueError(f"{self.name}: on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
        self.on_corrupt = on_corrupt
        self.skipped: dict[str, int] = {}  # reason -> number of samples dropped
        self.skipped_files: dict[str, list[str]] = {}  # reason -> their names
        self.items: list = []
        if not self.root.is_dir():
            raise _missing(self.name, self.root, f"the {self.name} dataset folder", self.layout)

    def _require(self, path: Path | None, what: str, default: str) -> Path:
        if path is None or not path.exists():
            raise _missing(self.name, path or self.root / default, what, self.layout)
        return path

    def _note_skips(self, reason: str, names: Sequence[str]) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + len(names)
        self.skipped_files.setdefault(reason, []).extend(names)

    def _existing(self, paths: Sequence[Path], listing: Path, lines: Sequence[int] | None = None) -> list[int]:
        """Indices of ``paths`` (images under ``self.image_dir`` that ``listing`` names) that exist. Missing
        ones raise ``MissingImageError`` naming them, or with ``on_corrupt="skip"`` are counted and dropped."""
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if not missing:
            return list(range(len(paths)))
        if self.on_corrupt == "raise":
            where = [self._shown(paths[i]) + (f" (line {lines[i]})" if lines is not None else "")
                     for i in missing]
            raise MissingImageError(
                f"{self.name}: {len(missing)} of the {len(paths)} images that {listing} lists do not "
                f"exist: {_examples(where)}. Fix: restore them (re-extract the download), {_SKIP_FIX}.")
        self._note_skips("missing image", [str(paths[i].relative_to(self.image_dir)) for i in missing])
        gone = set(missing)
        return [i for i in range(len(paths)) if i not in gone]

    def _shown(self, path: Path) -> str:
        """``path`` relative to the root (as the warnings and errors show it)."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _finish(self, split: str) -> None:
        """Drop bad samples when asked, report skips, refuse an empty split."""
        if self.on_corrupt == "skip":
            good = []
            for item in self.items:
                try:
                    self._sample(item)
                except (CorruptImageError, MissingImageError, SampleError) as err:
                    self._note_skips(getattr(err, "reason", "corrupt image"), [self._item_name(item)])
                else:
                    good.append(item)
            self.items = good
        if self.skipped:
            warnings.warn(f"{self.name} ({split}): skipped {sum(self.skipped.values())} samples: "
                          + ", ".join(f"{k}: {v}" + (f" ({_examples(self.skipped_files[k])})"
                                                     if self.skipped_files.get(k) else "")
                                      for k, v in self.skipped.items()), stacklevel=3)
        if not self.items:
            raise ValueError(f"{self.name}: split {split!r} under {self.root} is empty "
                             f"(no usable samples; skipped: {self.skipped or 'none'})")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self._sample(self.items[index])

    def _sample(self, item) -> dict:
        raise NotImplementedError

    def _item_name(self, item) -> str:
        """The name of an item's image, as the skip warning shows it."""
        return str(item)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, size={self.size})"


# --- RaFD ------------------------------------------------------------------------------------------

RAFD_IMAGE_SIZE = (681, 1024)  # (width, height) of every RaFD image
RAFD_CROP = (40, 170, 640, 770)  # (left, top, right, bottom): rows 170-770, cols 40-640 (MatchGAN)

_RAFD_LAYOUT = """\
  <root>/Rafd090_01_Caucasian_female_angry_frontal.jpg   681 x 1024 JPEGs, names
  <root>/Rafd090_01_Caucasian_female_angry_left.jpg      Rafd<angle>_<subject>_<ethnicity>_<gender>_
  ...                                                     <emotion>_<gaze>.jpg (sub-folders are searched
                                                          when root holds no Rafd*.jpg itself)"""


def parse_rafd_filename(name: str) -> dict:
    """Fields of a RaFD file name ``Rafd090_01_Caucasian_female_angry_frontal.jpg``.

    Returns angle, subject, ethnicity, gender, expression (index into ``labels.EXPRESSIONS``) and gaze;
    the emotion is the 5th underscore field, as in MatchGAN's ``preprocess_rafd.py``.
    """
    stem = Path(name).stem
    fields = stem.split("_")
    if len(fields) != 6 or not (fields[0][:4].lower() == "rafd" and fields[0][4:].isdigit()
                                and fields[1].isdigit()):
        raise ValueError(f"{name}: not a RaFD file name; expected "
                         "Rafd<angle>_<subject>_<ethnicity>_<gender>_<emotion>_<gaze>.jpg")
    try:
        expression = labels.expression_index(fields[4])
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return {"angle": int(fields[0][4:]), "subject": int(fields[1]), "ethnicity": fields[2],
            "gender": fields[3], "expression": expression, "gaze": fields[5]}


def _rafd_files(root: Path) -> list[Path]:
    def is_rafd(p: Path) -> bool:
        return p.name[:4].lower() == "rafd" and p.suffix.lower() in (".jpg", ".jpeg") and p.is_file()

    files = sorted(p for p in root.iterdir() if is_rafd(p))
    if not files:
        files = sorted(p for p in root.rglob("*") if is_rafd(p))
        seen: dict[str, Path] = {}
        for p in files:
            if p.name in seen:
                raise ValueError(f"RaFD: {p.name} occurs twice under {root} ({seen[p.name]} and {p}); "
                                 "point root at the folder of the original images")
            seen[p.name] = p
    return files


def _rafd_views(angles, gazes, parsed: list[tuple[Path, dict]], root: Path) -> tuple[set[int], set[str] | None]:
    """The camera angles and gazes asked for, checked against those of the files found."""
    if isinstance(angles, (str, numbers.Number)) or not hasattr(angles, "__iter__"):
        raise TypeError(f"RaFD: angles takes a list of camera angles in degrees, got {angles!r}; write "
                        f"angles=({angles!r},) (RaFD has 0, 45, 90, 135 and 180; 90 is frontal)")
    bad = [a for a in angles if not (isinstance(a, numbers.Real) and float(a).is_integer())]
    if bad:
        raise ValueError(f"RaFD: angles must be whole degrees (0, 45, 90, 135, 180), got {bad}")
    angles = {int(a) for a in angles}
    found = {f["angle"] for _, f in parsed}
    if angles - found:
        raise ValueError(f"RaFD: no image at angle(s) {sorted(angles - found)} under {root}; the images "
                         f"there have angles {sorted(found)}. Fix: pass angles= some of these.")
    if gazes is None:
        return angles, None
    gazes = set(_name_list(gazes, "gazes", "RaFD", "['frontal', 'left']"))
    found = {f["gaze"] for _, f in parsed}
    if gazes - found:
        raise ValueError(f"RaFD: no image with gaze(s) {sorted(gazes - found)} under {root}; the images "
                         f"there have gazes {sorted(found)}")
    return angles, gazes


class RaFD(_FaceDataset):
    """Radboud Faces Database: ``image``, ``identity`` (subject id), ``expression``.

    Crop (MatchGAN, ``justin941208/MatchGAN:preprocess_rafd.py``): rows 170-770, cols 40-640 of the
    681 x 1024 image, then resize to ``size``. Images of another size raise an error naming the file,
    unless ``crop="center"`` (a centred square of the shorter side, e.g. for pre-cropped copies).
    Split: the sorted subject ids, shuffled with ``random.Random(seed)``; the first
    ``n_train_identities`` are ``train``, the rest ``test`` (MatchGAN shuffles in file-system order,
    which is not reproducible; we sort first). ``split="all"`` keeps everyone.
    ``angles`` selects camera angles (90 = frontal); ``gazes`` (frontal/left/right) defaults to all.
    """

    name = "RaFD"
    layout = _RAFD_LAYOUT

    def __init__(self, root, split: str = "train", size: int = 128, *, angles: Sequence[int] = (90,),
                 n_train_identities: int = 60, seed: int = 1234, crop: str = "matchgan",
                 gazes: Sequence[str] | None = None, on_corrupt: str = "raise"):
        super().__init__(root, size, on_corrupt)
        self.split = _split_name(split, ("train", "test", "all"), self.name)
        if crop not in ("matchgan", "center"):
            raise ValueError(f"RaFD: crop must be 'matchgan' or 'center', got {crop!r}")
        self.crop = crop
        files = _rafd_files(self.root)
        if not files:
            raise _missing(self.name, self.root / "Rafd090_*.jpg", "RaFD images (none found)",
                           self.layout)
        parsed = [(p, parse_rafd_filename(p.name)) for p in files]
        angles, gazes = _rafd_views(angles, gazes, parsed, self.root)
        subjects = sorted({f["subject"] for _, f in parsed})
        self._split_identities(subjects, n_train_identities, seed)
        keep = {"train": set(self.train_identities), "test": set(self.test_identities),
                "all": set(subjects)}[self.split]
        self.items = [(p, f["subject"], f["expression"]) for p, f in parsed
                      if f["subject"] in keep and f["angle"] in angles
                      and (gazes is None or f["gaze"] in gazes)]
        self._finish(f"{self.split}, angles {sorted(angles)}")

    def _split_identities(self, subjects: list[int], n_train, seed: int) -> None:
        """``train_identities``: the first ``n_train`` of the shuffled subjects; ``test_identities``: the rest."""
        if isinstance(n_train, bool) or not isinstance(n_train, numbers.Integral) or n_train < 0:
            raise ValueError(f"RaFD: n_train_identities must be a whole number >= 0, got {n_train!r}")
        n = len(subjects)
        if n_train >= n and self.split == "test":
            raise ValueError(f"RaFD: the test split is empty: n_train_identities={n_train} but only {n} "
                             f"subjects were found under {self.root}, so all of them are train (the full "
                             f"RaFD has 67). Fix: pass n_train_identities={max(n - 1, 0)} or fewer.")
        if n_train > n and self.split == "train":
            warnings.warn(f"RaFD: n_train_identities={n_train} but only {n} subjects were found under "
                          f"{self.root}: all {n} are train and the test split is empty", stacklevel=3)
        order = list(subjects)
        random.Random(seed).shuffle(order)
        self.train_identities = tuple(sorted(order[:n_train]))
        self.test_identities = tuple(sorted(order[n_train:]))

    def _item_name(self, item) -> str:
        return item[0].name

    def _box(self, path: Path, width: int, height: int) -> tuple[int, int, int, int]:
        if self.crop == "center":
            return center_crop_box(width, height, min(width, height))
        if (width, height) != RAFD_IMAGE_SIZE:
            raise ValueError(f"RaFD: {path} is {width} x {height} (w x h); the MatchGAN crop needs the "
                             f"original {RAFD_IMAGE_SIZE[0]} x {RAFD_IMAGE_SIZE[1]} images. For resized "
                             "or pre-cropped copies pass crop='center'.")
        return RAFD_CROP

    def _sample(self, item) -> dict:
        path, subject, expression = item
        img = open_image(path)
        image = to_tensor(crop_resize(img, self._box(path, *img.size), self.size))
        return {"image": image, "identity": subject, "expression": expression}


# --- AffectNet -------------------------------------------------------------------------------------

AFFECTNET_EXPRESSIONS, AFFECTNET_DROPPED = labels.AFFECTNET_EXPRESSIONS, labels.AFFECTNET_DROPPED
_AFFECTNET_TO_INDEX = {code: labels.expression_index(n) for code, n in AFFECTNET_EXPRESSIONS.items()}
_AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                      "facial_landmarks", "expression", "valence", "arousal")
_AFFECTNET_LAYOUT = """\
  <root>/Manually_Annotated_file_lists/training.csv     columns subDirectory_filePath,face_x,face_y,
  <root>/Manually_Annotated_file_lists/validation.csv     face_width,face_height,facial_landmarks,
  <root>/Manually_Annotated_Images/<subDirectory_filePath>  expression,valence,arousal"""


def _read_affectnet_csv(path: Path):
    """Parse an AffectNet file list. Returns (kept rows (file, box, expression, landmarks, line),
    {dropped reason: count})."""
    try:
        return _parse_affectnet_csv(path)
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from err


def _parse_affectnet_csv(path: Path):
    rows, dropped = [], {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise LabelFileError(path, 1, "empty file; expected the AffectNet header line")
        header = [h.strip() for h in header]
        absent = [c for c in _AFFECTNET_COLUMNS[:7] if c not in header]
        if absent:
            raise LabelFileError(path, 1, f"missing columns {absent}; expected {','.join(_AFFECTNET_COLUMNS)}")
        col = {c: header.index(c) for c in _AFFECTNET_COLUMNS[:7]}
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise LabelFileError(path, line, f"{len(row)} columns, expected {len(header)}")
            code = _int(path, line, row[col["expression"]].strip(), "expression")
            if code in AFFECTNET_DROPPED:
                reason = AFFECTNET_DROPPED[code]
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            if code not in AFFECTNET_EXPRESSIONS:
                raise LabelFileError(path, line, f"expression code {code} is not in 0..10")
            x, y, w, h = (_int(path, line, row[col[c]].strip(), c)
                          for c in ("face_x", "face_y", "face_width", "face_height"))
            if w <= 0 or h <= 0:
                raise LabelFileError(path, line, f"empty face box {w} x {h}")
            try:
                pts = np.array([float(v) for v in row[col["facial_landmarks"]].split(";") if v.strip()],
                               dtype=np.float32)
            except ValueError:
                raise LabelFileError(path, line, "facial_landmarks should be 136 numbers 'x;y;x;y;...'") from None
            if pts.size != 136:
                raise LabelFileError(path, line, f"facial_landmarks has {pts.size} numbers, expected 136")
            bad = np.flatnonzero(~np.isfinite(pts))
            if bad.size:
                k = int(bad[0])
                raise LabelFileError(path, line, f"facial_landmarks number {k + 1} (the {'xy'[k % 2]} of "
                                     f"landmark {k // 2 + 1}) is {pts[k]}; every landmark needs finite "
                                     "coordinates. Fix: correct or delete this row")
            rows.append((row[col["subDirectory_filePath"]].strip(), (x, y, w, h),
                         _AFFECTNET_TO_INDEX[code], pts.reshape(68, 2), line))
    return rows, dropped


class AffectNet(_FaceDataset):
    """AffectNet (manually annotated part): ``image`` (face box crop), ``expression``, ``landmarks``.

    ``split="train"`` reads ``training.csv``; ``"val"`` and ``"test"`` read ``validation.csv``
    (AffectNet's test set is not public, so papers report on the validation set). Codes 0-7 are mapped
    to ``labels.EXPRESSIONS`` (``AFFECTNET_EXPRESSIONS``); rows coded 8-10 (None, Uncertain, Non-Face) are
    dropped and counted in ``.skipped``. The crop is the square of side max(face_width, face_height)
    centred on the face box (the box itself when it is square; parts of the square outside the photo
    are black), so faces keep their aspect ratio; the 68 landmarks are mapped into the resized crop.
    The face box itself must lie inside the photo (``SampleError`` otherwise); listed images that do not
    exist raise ``MissingImageError`` at construction. ``on_corrupt="skip"`` drops and counts both.
    """

    name = "AffectNet"
    layout = _AFFECTNET_LAYOUT

    def __init__(self, root, split: str = "train", size: int = 128, *, on_corrupt: str = "raise"):
        super().__init__(root, size, on_corrupt)
        self.split = _split_name(split, ("train", "val", "test"), self.name)
        lists = self._require(_find(self.root, "Manually_Annotated_file_lists"),
                              "the folder of AffectNet's CSV file lists", "Manually_Annotated_file_lists")
        self.image_dir = self._require(_find(self.root, "Manually_Annotated_Images"),
                                       "the folder of AffectNet's images", "Manually_Annotated_Images")
        csv_name = "training.csv" if self.split == "train" else "validation.csv"
        self.csv_path = self._require(_find(lists, csv_name), f"AffectNet's {csv_name}",
                                      f"Manually_Annotated_file_lists/{csv_name}")
        rows, self.skipped = _read_affectnet_csv(self.csv_path)
        kept = self._existing([self.image_dir / r[0] for r in rows], self.csv_path, [r[4] for r in rows])
        rows = [rows[i] for i in kept]
        self._paths, self._lines = [r[0] for r in rows], [r[4] for r in rows]
        self._boxes = np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, 4)
        self._expressions = [r[2] for r in rows]
        self._landmarks = np.stack([r[3] for r in rows]) if rows else np.zeros((0, 68, 2), np.float32)
        self.items = list(range(len(rows)))
        self._finish(f"{self.split}, {csv_name}")

    def _square(self, i: int) -> tuple[int, int, int]:
        x, y, w, h = (int(v) for v in self._boxes[i])
        side = max(w, h)
        return x + (w - side) // 2, y + (h - side) // 2, side

    def _check_box(self, i: int, width: int, height: int) -> None:
        x, y, w, h = (int(v) for v in self._boxes[i])
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise SampleError(
                f"{self.csv_path}, line {self._lines[i]}: the face box (face_x={x}, face_y={y}, "
                f"face_width={w}, face_height={h}) reaches outside the {width} x {height} image "
                f"{self._paths[i]}. Fix: correct the row, {_SKIP_FIX}.", reason="face box outside the image")

    def _item_name(self, i: int) -> str:
        return self._paths[i]

    def _sample(self, i: int) -> dict:
        left, top, side = self._square(i)
        img = open_image(self.image_dir / self._paths[i])
        self._check_box(i, *img.size)
        image = to_tensor(crop_resize(img, (left, top, left + side, top + side), self.size))
        landmarks = torch.from_numpy(self._landmarks[i]) - torch.tensor([left, top], dtype=torch.float32)
        return {"image": image, "expression": self._expressions[i],
                "landmarks": scale_points(landmarks, self.size / side)}


# --- CelebA ----------------------------------------------------------------------------------------

_CELEBA_LAYOUT = """\
  <root>/img_align_celeba/000001.jpg ...   178 x 218 aligned JPEGs
  <root>/list_attr_celeba.txt              line 1: image count; line 2: the 40 attribute names;
                                           then '000001.jpg -1  1 ...' (-1 / 1)
  <root>/list_eval_partition.txt           '000001.jpg 0' (0 train, 1 val, 2 test)
  <root>/identity_CelebA.txt               optional: '000001.jpg 2880' -> identity
  (the Google-Drive layout Img/, Anno/, Eval/ is accepted too)"""
_PARTITION_CODES = {"train": 0, "val": 1, "test": 2}
_PARTITION_NAMES = {code: split for split, code in _PARTITION_CODES.items()}
_PLUS_MINUS_ONE = {"-1": 0, "1": 1}


def read_attribute_file(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``list_attr_celeba.txt`` / ``CelebAMask-HQ-attribute-anno.txt``.

    Format (CelebA README): line 1 the image count, line 2 the attribute names, then one line per image:
    the file name and one -1 / 1 per attribute. Returns (attribute names, file names, values as uint8
    0/1 of shape (n_images, n_attributes)).
    """
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) < 2:
        raise LabelFileError(path, len(lines) + 1, "expected the image count on line 1 and the "
                             "attribute names on line 2")
    count = _int(path, 1, lines[0].strip(), "the image count")
    names = lines[1].split()
    files, values = [], []
    for line, text in enumerate(lines[2:], start=3):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise LabelFileError(path, line, f"{len(fields)} fields, expected a file name and "
                                 f"{len(names)} values")
        try:
            values.append([_PLUS_MINUS_ONE[v] for v in fields[1:]])
        except KeyError:  # the slow path: "+1", or an error to report
            row = [_int(path, line, v, "an attribute value") for v in fields[1:]]
            if any(v not in (-1, 1) for v in row):
                raise LabelFileError(path, line, "attribute values must be -1 or 1") from None
            values.append([int(v > 0) for v in row])
        files.append(fields[0])
    if len(files) != count:
        raise LabelFileError(path, 1, f"the header announces {count} images but the file lists "
                             f"{len(files)} (truncated or edited file?)")
    arr = np.array(values, dtype=np.uint8).reshape(len(files), len(names))
    return names, files, arr


def read_partition_file(path: str | Path, value_name: str = "partition", *,
                        allowed: dict[int, str] | None = None) -> dict[str, int]:
    """Read a two-column ``<file> <integer>`` file (``list_eval_partition.txt``, ``identity_CelebA.txt``).

    ``allowed`` ({value: meaning}, e.g. {0: "train", 1: "val", 2: "test"}): any other value is a
    ``LabelFileError``. A file listed twice is one too (which line would count?).
    """
    path = Path(path)
    out, first = {}, {}
    for line, text in enumerate(_read_lines(path), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise LabelFileError(path, line, f"{len(fields)} fields, expected '<file> <{value_name}>'")
        value = _int(path, line, fields[1], value_name)
        if allowed is not None and value not in allowed:
            meaning = ", ".join(f"{v} ({m})" for v, m in allowed.items())
            raise LabelFileError(path, line, f"{value_name} {value} of {fields[0]} is not one of {meaning}. "
                                 "Fix: correct this line")
        if fields[0] in first:
            raise LabelFileError(path, line, f"{fields[0]} is listed again (first on line "
                                 f"{first[fields[0]]}). Fix: keep one of the two lines")
        out[fields[0]], first[fields[0]] = value, line
    return out


def _crop_side(crop) -> int:
    if isinstance(crop, bool) or not isinstance(crop, numbers.Real) or not float(crop).is_integer() or crop < 1:
        raise ValueError(f"CelebA: crop is the side in pixels of the centred square cut from each 178 x 218 "
                         f"image (170 in AttGAN, 178 in StarGAN); it must be a whole number >= 1, got {crop!r}")
    return int(crop)


def _select_attributes(names: list[str], wanted: Sequence[str], path: Path) -> list[int]:
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown} (not in {path.name}); valid names: "
                         f"{', '.join(names)}")
    return [names.index(a) for a in wanted]


class CelebA(_FaceDataset):
    """CelebA aligned: ``image`` (CenterCrop ``crop``, resize), ``attributes``, ``identity`` if
    ``identity_CelebA.txt`` is present.

    ``attributes`` picks and orders the columns (default ``labels.ATTRIBUTES``, AttGAN's 13; StarGAN's
    five are ``labels.STARGAN_CELEBA_ATTRIBUTES``); -1/1 become 0/1. Splits follow
    ``list_eval_partition.txt`` (AttGAN's index ranges [:182000] etc. are a different, index-based split).
    Images the attribute file lists but that do not exist raise ``MissingImageError`` at construction
    (``on_corrupt="skip"``: dropped and counted).
    """

    name = "CelebA"
    layout = _CELEBA_LAYOUT

    def __init__(self, root, split: str = "train", *, attributes: Sequence[str] = labels.ATTRIBUTES,
                 size: int = 128, crop: int = 170, on_corrupt: str = "raise"):
        super().__init__(root, size, on_corrupt)
        self.split = _split_name(split, ("train", "val", "test", "all"), self.name)
        self.crop = _crop_side(crop)
        self.attributes = _name_list(attributes, "attributes", self.name, "['Smiling', 'Male']")
        self.image_dir = self._require(_find(self.root, "img_align_celeba", "Img/img_align_celeba"),
                                       "the folder of aligned CelebA images", "img_align_celeba")
        attr_path = self._require(_find(self.root, "list_attr_celeba.txt", "Anno/list_attr_celeba.txt"),
                                  "CelebA's attribute file", "list_attr_celeba.txt")
        names, files, values = read_attribute_file(attr_path)
        self._attrs = torch.from_numpy(values[:, _select_attributes(names, self.attributes, attr_path)]
                                       .astype(np.float32))
        self._files = files
        keep = range(len(files))
        if self.split != "all":
            part_path = self._require(
                _find(self.root, "list_eval_partition.txt", "Eval/list_eval_partition.txt"),
                "CelebA's partition file", "list_eval_partition.txt")
            part = read_partition_file(part_path, allowed=_PARTITION_NAMES)
            absent = [f for f in files if f not in part]
            if absent:
                raise ValueError(f"CelebA: {len(absent)} images of {attr_path.name} (e.g. {absent[0]}) "
                                 f"have no line in {part_path}")
            keep = [i for i, f in enumerate(files) if part[f] == _PARTITION_CODES[self.split]]
        keep = [keep[j] for j in self._existing([self.image_dir / files[i] for i in keep], attr_path)]
        id_path = _find(self.root, "identity_CelebA.txt", "Anno/identity_CelebA.txt")
        self._identities = read_partition_file(id_path, "identity") if id_path else None
        if self._identities is not None and any(files[i] not in self._identities for i in keep):
            absent = next(files[i] for i in keep if files[i] not in self._identities)
            raise ValueError(f"CelebA: {absent} has no line in {id_path}")
        self.items = list(keep)
        self._finish(self.split)

    def _item_name(self, i: int) -> str:
        return self._files[i]

    def _sample(self, i: int) -> dict:
        path = self.image_dir / self._files[i]
        img = open_image(path)
        try:
            box = center_crop_box(*img.size, self.crop)
        except ValueError as err:
            raise ValueError(f"CelebA: {path}: {err} (aligned CelebA images are 178 x 218)") from None
        sample = {"image": to_tensor(crop_resize(img, box, self.size)), "attributes": self._attrs[i].clone()}
        if self._identities is not None:
            sample["identity"] = self._identities[self._files[i]]
        return sample


# --- CelebAMask-HQ ---------------------------------------------------------------------------------

_CELEBAMASK_LAYOUT = """\
  <root>/CelebA-HQ-img/0.jpg ...                          1024 x 1024 JPEGs
  <root>/CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png   512 x 512, part pixels non-zero;
                                                          parts: skin, nose, eye_g, ... (absent = none)
  <root>/CelebA-HQ-to-CelebA-mapping.txt                  'idx orig_idx orig_file' (one header line)
  <root>/list_eval_partition.txt                          optional: CelebA's partition file, copied here
  <root>/CelebAMask-HQ-attribute-anno.txt                 optional: CelebA-style attributes"""
# CelebAMask-HQ's g_partition.py splits on the 0-based CelebA index orig_idx:
_G_PARTITION_VAL, _G_PARTITION_TEST = 162771, 182638


def _read_hq_mapping(path: Path) -> list[tuple[int, int, str]]:
    """``CelebA-HQ-to-CelebA-mapping.txt``: a header line, then 'idx orig_idx orig_file'."""
    rows = []
    for line, text in enumerate(_read_lines(path), start=1):
        fields = text.split()
        if not fields or (line == 1 and fields[0] == "idx"):
            continue
        if len(fields) != 3:
            raise LabelFileError(path, line, f"{len(fields)} fields, expected 'idx orig_idx orig_file'")
        rows.append((_int(path, line, fields[0], "idx"), _int(path, line, fields[1], "orig_idx"), fields[2]))
    return rows


def _partition_of(orig_idx: int) -> int:
    """Partition of a CelebA-HQ image by g_partition.py's rule (used without list_eval_partition.txt)."""
    return 1 if _G_PARTITION_VAL <= orig_idx < _G_PARTITION_TEST else 2 if orig_idx >= _G_PARTITION_TEST else 0


def merge_part_masks(index: int, anno_dir: Path) -> np.ndarray:
    """One CelebAMask-HQ label map from the per-part PNGs, exactly as the official ``g_mask.py``.

    Parts are visited in ``labels.CELEBAMASK_PART_FILES`` order; every non-zero pixel of a part's PNG
    (blue channel, as cv2 reads it) gets that part's index in ``labels.PARSING_CLASSES``, so later parts
    overwrite earlier ones; pixels of no part stay 0 (background). Missing part files mean absent parts.
    """
    folder = anno_dir / str(index // 2000)
    label = None
    for value, part in enumerate(labels.CELEBAMASK_PART_FILES, start=1):
        path = folder / f"{index:05d}_{part}.png"
        if not path.exists():
            continue
        img = open_image(path, mode=None)
        arr = np.asarray(img if img.mode in ("L", "1") else img.convert("RGB"))
        arr = arr[..., 2] if arr.ndim == 3 else arr
        if label is None:
            label = np.zeros(arr.shape, dtype=np.uint8)
        elif arr.shape != label.shape:
            raise ValueError(f"CelebAMask-HQ: {path} is {arr.shape[1]} x {arr.shape[0]}, the other parts "
                             f"of image {index} are {label.shape[1]} x {label.shape[0]}")
        label[arr != 0] = value
    if label is None:
        raise MissingImageError(f"CelebAMask-HQ: no part mask of image {index} in {folder} "
                                f"(expected files like {index:05d}_skin.png)", reason="missing part masks")
    return label


class CelebAMaskHQ(_FaceDataset):
    """CelebAMask-HQ: ``image`` (1024 px, resized), ``mask`` (official 19 classes, nearest-neighbour
    resized), ``attributes`` when ``CelebAMask-HQ-attribute-anno.txt`` is present.

    Splits: CelebA's ``list_eval_partition.txt`` copied into ``root``, looked up through
    ``CelebA-HQ-to-CelebA-mapping.txt`` (orig_file). Without that file, the official ``g_partition.py``
    rule on orig_idx is used (val: 162771 <= orig_idx < 182638; test: >= 182638); it differs from
    CelebA's file by at most the two boundary images, since orig_idx is 0-based. A split holds the
    images the mapping lists for it (missing ones raise ``MissingImageError``); ``"all"`` holds the
    images found in ``CelebA-HQ-img``. Image and masks must be square (``SampleError`` otherwise).
    """

    name = "CelebAMask-HQ"
    layout = _CELEBAMASK_LAYOUT

    def __init__(self, root, split: str = "train", size: int = 128, *,
                 attributes: Sequence[str] = labels.ATTRIBUTES, on_corrupt: str = "raise"):
        super().__init__(root, size, on_corrupt)
        self.split = _split_name(split, ("train", "val", "test", "all"), self.name)
        self.attributes = _name_list(attributes, "attributes", self.name, "['Smiling', 'Male']")
        self.image_dir = self._require(_find(self.root, "CelebA-HQ-img"), "the folder of CelebA-HQ images",
                                       "CelebA-HQ-img")
        self.anno_dir = self._require(_find(self.root, "CelebAMask-HQ-mask-anno"),
                                      "the folder of per-part mask PNGs", "CelebAMask-HQ-mask-anno")
        self.items = self._split_indices()
        self._attrs = self._read_attributes(self.items)
        self._finish(self.split)

    def _split_indices(self) -> list[int]:
        found = sorted(int(p.stem) for p in self.image_dir.glob("*.jpg") if p.stem.isdigit())
        if self.split == "all":
            return found
        mapping_path = self._require(_find(self.root, "CelebA-HQ-to-CelebA-mapping.txt"),
                                     "the CelebA-HQ to CelebA mapping", "CelebA-HQ-to-CelebA-mapping.txt")
        part_path = _find(self.root, "list_eval_partition.txt")
        part = read_partition_file(part_path, allowed=_PARTITION_NAMES) if part_path else None
        code = {}
        for idx, orig_idx, orig_file in _read_hq_mapping(mapping_path):
            if part is not None and orig_file not in part:
                raise ValueError(f"CelebAMask-HQ: {orig_file} (CelebA-HQ image {idx}) has no line in "
                                 f"{part_path}")
            code[idx] = part[orig_file] if part is not None else _partition_of(orig_idx)
        unmapped = [i for i in found if i not in code]
        if unmapped:
            raise ValueError(f"CelebAMask-HQ: images {unmapped[:5]} have no line in "
                             "CelebA-HQ-to-CelebA-mapping.txt")
        listed = sorted(i for i, c in code.items() if c == _PARTITION_CODES[self.split])
        kept = self._existing([self.image_dir / f"{i}.jpg" for i in listed], mapping_path)
        return [listed[k] for k in kept]

    def _read_attributes(self, indices: list[int]) -> dict[int, torch.Tensor] | None:
        attr_path = _find(self.root, "CelebAMask-HQ-attribute-anno.txt")
        if attr_path is None:
            return None
        names, files, values = read_attribute_file(attr_path)
        cols = _select_attributes(names, self.attributes, attr_path)
        row = {f: r for r, f in enumerate(files)}
        absent = [i for i in indices if f"{i}.jpg" not in row]
        if absent:
            raise ValueError(f"CelebAMask-HQ: images {absent[:5]} have no line in {attr_path}")
        return {i: torch.from_numpy(values[row[f"{i}.jpg"], cols].astype(np.float32)) for i in indices}

    def _check_shapes(self, index: int, image_size: tuple[int, int], mask_shape: tuple[int, int]) -> None:
        """Image and masks are both resized to size x size: they must be square (so of one aspect)."""
        (mh, mw), (iw, ih) = mask_shape, image_size
        masks = f"the part masks of image {index} ({self.anno_dir.name}/{index // 2000}/{index:05d}_*.png)"
        fix = f"Fix: replace them with the official files (images 1024 x 1024, masks 512 x 512), {_SKIP_FIX}."
        if mh != mw:
            raise SampleError(f"CelebAMask-HQ: {masks} are {mw} x {mh} (w x h), not square; resizing them "
                              f"to {self.size} x {self.size} would distort them. {fix}", reason="mask shape")
        if abs(iw - ih) > 0.01 * max(iw, ih):
            with Image.open(self.image_dir / f"{index}.jpg") as img:  # the size before draft decoding
                iw, ih = img.size
            raise SampleError(f"CelebAMask-HQ: image {index}.jpg is {iw} x {ih} (w x h), not the square "
                              f"aspect of its {mw} x {mh} part masks, so image and mask would not line up. "
                              f"{fix}", reason="mask shape")

    def _item_name(self, index: int) -> str:
        return f"{index}.jpg"

    def _sample(self, index: int) -> dict:
        img = open_image(self.image_dir / f"{index}.jpg", draft=(2 * self.size, 2 * self.size))
        mask = merge_part_masks(index, self.anno_dir)
        self._check_shapes(index, img.size, mask.shape)
        sample = {"image": to_tensor(crop_resize(img, None, self.size)), "mask": resize_mask(mask, self.size)}
        if self._attrs is not None:
            sample["attributes"] = self._attrs[index].clone()
        return sample


# --- OpenFace action units -------------------------------------------------------------------------

def _openface_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, r) for r in reader if r and "".join(r).strip()]
    except FileNotFoundError:
        raise FileNotFoundError(f"OpenFace CSV not found: {path} (write it with "
                                "'FaceLandmarkImg -f <image> -aus -out_dir <folder>')") from None
    except UnicodeDecodeError as err:
        raise _not_text(path, err) from err
    if not header:
        raise LabelFileError(path, 1, "empty file; expected OpenFace's header line")
    return header, rows


def _finite(path: Path, line: int, texts: Sequence[str], names: Sequence[str], what: str) -> list[float]:
    """The numbers of a CSV row; a non-number, NaN or infinity is a ``LabelFileError`` naming its column."""
    out = []
    for text, name in zip(texts, names):
        try:
            value = float(text)
        except ValueError:
            raise LabelFileError(path, line, f"{what} should be numbers: {name} is {text!r}") from None
        if not math.isfinite(value):
            raise LabelFileError(path, line, f"{name} is {text.strip()!r}, not a finite number. Fix: re-run "
                                 "OpenFace on this image, or delete the row")
        out.append(value)
    return out


def _raw_openface_csv(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The raw 17 AU intensities (n_rows, 17) of an OpenFace CSV, and the rows' confidences (None when
    the file has no ``confidence`` column)."""
    header, rows = _openface_table(path)
    absent = [c for c in labels.OPENFACE_AU_COLUMNS if c not in header]
    if absent:
        raise LabelFileError(path, 1, f"missing OpenFace AU columns {absent} (run OpenFace with -aus)")
    cols = [header.index(c) for c in labels.OPENFACE_AU_COLUMNS]
    conf = header.index("confidence") if "confidence" in header else None
    out, confidences = torch.zeros(len(rows), len(cols)), torch.zeros(len(rows))
    for r, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise LabelFileError(path, line, f"{len(row)} columns, expected {len(header)}")
        out[r] = torch.tensor(_finite(path, line, [row[c] for c in cols], labels.OPENFACE_AU_COLUMNS,
                                      "AU intensities"))
        if conf is not None:
            confidences[r] = _finite(path, line, [row[conf]], ["confidence"], "confidences")[0]
    return out, (confidences if conf is not None else None)


def _scale_aus(raw: torch.Tensor, source: str, row_names: Sequence[str]) -> torch.Tensor:
    """Raw intensities / ``labels.OPENFACE_AU_SCALE``, clipped to [0, 1]; values outside OpenFace's
    0..5 (OpenFace itself writes none) are clipped with a warning that counts them."""
    scale = labels.OPENFACE_AU_SCALE
    outside = (raw < 0) | (raw > scale)
    if outside.any():
        rows, cols = outside.nonzero(as_tuple=True)
        shown = [f"{row_names[r]} {labels.OPENFACE_AU_COLUMNS[c]} = {raw[r, c].item():g}"
                 for r, c in zip(rows[:3].tolist(), cols[:3].tolist())]
        warnings.warn(f"{source}: clipped {len(rows)} AU intensities outside OpenFace's range 0..{scale:g} "
                      f"into it (e.g. {', '.join(shown)})", stacklevel=3)
    return (raw / scale).clamp_(0.0, 1.0)


def read_openface_csv(path: str | Path) -> torch.Tensor:
    """The 17 intensity AUs of an OpenFace CSV as a float tensor (n_rows, 17) in ``labels.AUS`` order.

    OpenFace (FaceLandmarkImg / FeatureExtraction ``-aus``) writes a header such as
    ``frame, face_id, timestamp, confidence, success, ..., AU01_r, ..., AU45_r, AU01_c, ...`` (with
    spaces after the commas); columns are found by name. Values (0-5) are divided by
    ``labels.OPENFACE_AU_SCALE`` and clipped to [0, 1], as GANimation does (values outside 0-5 warn).
    A non-number, NaN or infinity raises ``LabelFileError`` (file, line, column).
    """
    path = Path(path)
    raw, _ = _raw_openface_csv(path)
    return _scale_aus(raw, str(path), [f"row {r + 1}" for r in range(len(raw))])


def _best_face(path: Path) -> torch.Tensor:
    """Raw AUs of the most confident face of a one-image OpenFace CSV (the only face, usually)."""
    raw, confidences = _raw_openface_csv(path)
    if len(raw) == 0:
        raise LabelFileError(path, 2, "no face rows (OpenFace found no face in this image)")
    if len(raw) > 1 and confidences is not None:
        return raw[int(confidences.argmax())]
    return raw[0]


_OPENFACE_LAYOUT = """\
  <root>/imgs/<name>.jpg            face crops (GANimation: 128 x 128)
  <root>/aus_openface/<name>.csv    one OpenFace CSV per image ('FaceLandmarkImg -fdir imgs -aus
                                    -out_dir aus_openface'), or <root>/aus_openface.pkl (GANimation's
                                    pickled {name: 17 raw AU intensities})
  <root>/train_ids.csv              image file names of the split, one per line (GANimation)
  <root>/test_ids.csv"""


class OpenFaceAUs(_FaceDataset):
    """GANimation-style AU data: ``image`` (resized whole image) and ``aus`` (17, in [0, 1]).

    Layout of ``albertpumarola/GANimation`` (imgs/, train_ids.csv, test_ids.csv), with the per-image
    OpenFace CSVs in ``aus_openface/`` (read once at construction) or GANimation's ``aus_openface.pkl``
    (a pickle: only load files you trust). With several faces in a CSV the most confident one is used.
    Listed images that do not exist raise ``MissingImageError`` (``on_corrupt="skip"``: dropped and
    counted, their AUs not read).
    """

    name = "OpenFace AUs"
    layout = _OPENFACE_LAYOUT

    def __init__(self, root, split: str = "train", size: int = 128, *, on_corrupt: str = "raise"):
        super().__init__(root, size, on_corrupt)
        self.split = _split_name(split, ("train", "test"), self.name)
        self.image_dir = self._require(_find(self.root, "imgs"), "the folder of face images", "imgs")
        ids_path = self._require(_find(self.root, f"{self.split}_ids.csv"),
                                 f"the list of {self.split} images", f"{self.split}_ids.csv")
        listed = [(line, t.split("\t")[0].strip()) for line, t in enumerate(_read_lines(ids_path), start=1)
                  if t.strip()]
        stems = [n.rsplit(".", 1)[0] if Path(n).suffix else n for _, n in listed]
        kept = self._existing([self._image_path(s) for s in stems], ids_path, [line for line, _ in listed])
        stems = [stems[k] for k in kept]
        raw = self._read_aus(stems, ids_path)
        self._aus = dict(zip(stems, _scale_aus(raw, f"{self.name} ({self.split})", stems)))
        self.items = stems
        self._finish(self.split)

    def _read_aus(self, stems: list[str], ids_path: Path) -> torch.Tensor:
        """The raw intensities (len(stems), 17), from the CSV folder or GANimation's pickle."""
        csv_dir, pkl = _find(self.root, "aus_openface"), _find(self.root, "aus_openface.pkl")
        if csv_dir is not None:
            rows = [_best_face(csv_dir / f"{s}.csv") for s in stems]
        elif pkl is not None:
            with open(pkl, "rb") as f:
                table = _ArrayUnpickler(f, encoding="latin1").load()
            absent = [s for s in stems if s not in table]
            if absent:
                raise ValueError(f"OpenFace AUs: {len(absent)} images of {ids_path.name} (e.g. {absent[0]}) "
                                 f"have no entry in {pkl}")
            rows = [self._pickled_aus(table[s], s, pkl) for s in stems]
        else:
            raise _missing(self.name, self.root / "aus_openface", "a folder of OpenFace CSVs (or "
                           "aus_openface.pkl)", self.layout)
        return torch.stack(rows) if rows else torch.zeros(0, len(labels.AUS))

    @staticmethod
    def _pickled_aus(values, stem: str, pkl: Path) -> torch.Tensor:
        """GANimation's pickle holds the 17 raw intensities (OpenFace's ``content[2:19]``)."""
        aus = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if aus.shape != (len(labels.AUS),):
            raise ValueError(f"OpenFace AUs: {pkl} holds {tuple(aus.shape)} values for {stem}, expected "
                             f"the {len(labels.AUS)} intensities {labels.OPENFACE_AU_COLUMNS[0]}..")
        bad = (~torch.isfinite(aus)).nonzero()
        if len(bad):
            k = int(bad[0])
            raise ValueError(f"OpenFace AUs: {pkl} holds {aus[k].item()} for {stem}'s "
                             f"{labels.OPENFACE_AU_COLUMNS[k]}, not a finite number. Fix: re-run OpenFace "
                             "on that image and re-create the pickle")
        return aus

    def _item_name(self, stem: str) -> str:
        return self._image_path(stem).name

    def _image_path(self, stem: str) -> Path:
        path = self.image_dir / f"{stem}.jpg"
        if not path.exists() and (self.image_dir / f"{stem}.png").exists():
            return self.image_dir / f"{stem}.png"
        return path

    def _sample(self, stem: str) -> dict:
        image = to_tensor(crop_resize(open_image(self._image_path(stem)), None, self.size))
        return {"image": image, "aus": self._aus[stem].clone()}
