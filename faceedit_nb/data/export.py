"""Write SynthFaces samples to disk in the layouts of the real datasets.

The real-format loaders of ``faceedit_nb.data.formats`` then read real files: the export is how the
loaders are tested and how a reader tries a loader (and the book's pipelines) without the licensed data.
Layouts follow the official distributions (see each loader's ``layout``); JPEG quality 95, PNG masks.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from .. import labels
from .formats import AFFECTNET_EXPRESSIONS, RAFD_CROP, RAFD_IMAGE_SIZE
from .transforms import center_crop_box, paste_with_edge, scale_points, to_pil

__all__ = ["export_synthfaces", "FORMATS"]

FORMATS = ("rafd", "affectnet", "celeba", "celebamask-hq", "openface")
_ALIASES = {"celebamaskhq": "celebamask-hq", "celebamask_hq": "celebamask-hq", "celeba-hq": "celebamask-hq"}
_SPLITS = {"rafd": ("train", "val", "test"), "affectnet": ("train", "val", "test"),
           "celeba": ("train", "val", "test"), "celebamask-hq": ("train", "val", "test"),
           "openface": ("train", "test")}
UPSCALE = Image.BICUBIC  # the SynthFaces render is enlarged to the format's face size with this filter

# First CelebA file number of each partition. CelebA's val starts at 162771.jpg and test at 182638.jpg;
# one later, so that CelebAMask-HQ's g_partition.py rule on the 0-based orig_idx agrees too.
_CELEBA_FIRST = {"train": 1, "val": 162772, "test": 182639}
_PARTITION_CODE = {"train": 0, "val": 1, "test": 2}
_AFFECTNET_CODE = {labels.expression_index(name): code for code, name in AFFECTNET_EXPRESSIONS.items()}
_AFFECTNET_NO_EXPRESSION = 8  # AffectNet's "None": the code of SynthFaces' free-AU samples


def export_synthfaces(root, format: str, n: int, size: int, seed: int = 0,
                      split: str | Sequence[str] = "train", quality: int = 95, dataset=None,
                      exist_ok: bool = False, **synthfaces_options) -> Path:
    """Render ``n`` SynthFaces samples per split (``SynthFaces(split, size, n, seed)``) and write them
    to ``root`` in the layout of ``format``; returns ``root`` as a ``Path``.

    ``format``: ``"rafd"`` (681 x 1024 JPEGs named ``Rafd090_<id>_Caucasian_<gender>_<emotion>_<gaze>.jpg``,
    the face enlarged into the MatchGAN crop rows 170-770, cols 40-640, the rest edge-filled; a repeated
    (identity, expression) pair takes the next gaze: frontal, left, right), ``"affectnet"`` (face boxes
    and 68 landmarks in training.csv / validation.csv; val and test go to validation.csv),
    ``"celeba"`` (178 x 218 images whose 170 centre crop is the face; all 40 attribute columns, those not in
    ``labels.ATTRIBUTES`` are -1; partition and identity files), ``"celebamask-hq"`` (1024 px images,
    512 px per-part PNGs, mapping, partition and attribute files), ``"openface"`` (GANimation layout:
    images at ``size``, one OpenFace-style CSV per image with ``AUxx_r`` = 5 x aus and
    ``AUxx_c`` = (AUxx_r >= 1), train_ids.csv / test_ids.csv).
    ``split`` is one split or several (e.g. ``("train", "val", "test")``), each with ``n`` samples.
    ``dataset``: export these samples instead of rendering SynthFaces (any dataset of sample dicts;
    one split only). A non-empty ``root`` is refused unless ``exist_ok`` (files of an earlier export
    would mix with the new ones). Other keyword arguments go to ``SynthFaces`` (e.g. ``n_identities=5`` so that a
    small RaFD export holds every expression of a few people).
    """
    fmt = _ALIASES.get(format.lower(), format.lower())
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}")
    splits = (split,) if isinstance(split, str) else tuple(split)
    bad = [s for s in splits if s not in _SPLITS[fmt]]
    if bad or not splits or len(set(splits)) != len(splits):
        raise ValueError(f"format {fmt!r}: splits must be distinct names among {_SPLITS[fmt]}, got {split!r}")
    if dataset is not None and len(splits) != 1:
        raise ValueError("dataset= exports one split; call once per split")
    root = Path(root).expanduser()
    if root.is_dir() and any(root.iterdir()) and not exist_ok:
        raise FileExistsError(f"{root} is not empty; export into a new folder (or pass exist_ok=True "
                              "to write over it)")
    root.mkdir(parents=True, exist_ok=True)
    samples = _samples(splits, n, size, seed, dataset, synthfaces_options)
    writer = {"rafd": _write_rafd, "affectnet": _write_affectnet, "celeba": _write_celeba,
              "celebamask-hq": _write_celebamask_hq, "openface": _write_openface}[fmt]
    writer(root, samples, quality=quality, seed=seed)
    return root


def _samples(splits, n, size, seed, dataset, options) -> Iterable[tuple[str, dict]]:
    """(split, sample) pairs: ``n`` SynthFaces samples of each split, in index order."""
    for s in splits:
        if dataset is None:
            from .synthfaces import SynthFaces
            data = SynthFaces(split=s, size=size, n=n, seed=seed, **options)
        else:
            data = dataset
        for k in range(min(n, len(data))):
            yield s, data[k]


def _require(sample: dict, key: str, fmt: str):
    if key not in sample:
        raise KeyError(f"format {fmt!r} needs {key!r} in every sample; this sample has {sorted(sample)}")
    return sample[key]


def _face(sample: dict, side: int) -> Image.Image:
    """The sample's image as PIL, enlarged (or reduced) to ``side`` x ``side``."""
    img = to_pil(sample["image"])
    return img if img.size == (side, side) else img.resize((side, side), UPSCALE)


def _attribute_values(sample: dict, fmt: str) -> list[int]:
    """All 40 CelebA columns as -1 / 1: the 13 of ``labels.ATTRIBUTES`` from the sample, others -1."""
    attrs = _require(sample, "attributes", fmt)
    known = {name: 1 if float(v) > 0.5 else -1 for name, v in zip(labels.ATTRIBUTES, attrs)}
    return [known.get(name, -1) for name in labels.CELEBA_ATTRIBUTES]


def _attribute_lines(rows: list[tuple[str, list[int]]]) -> str:
    """The CelebA attribute-file text: count, names, then '<file> -1  1 ...'."""
    lines = [str(len(rows)), " ".join(labels.CELEBA_ATTRIBUTES)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows]
    return "\n".join(lines) + "\n"


def _celeba_names(samples):
    """Yield (split, sample, CelebA file number) with each partition's numbering (``_CELEBA_FIRST``)."""
    count = Counter()
    for s, sample in samples:
        number = _CELEBA_FIRST[s] + count[s]
        count[s] += 1
        nxt = [v for v in _CELEBA_FIRST.values() if v > _CELEBA_FIRST[s]]
        if nxt and number >= min(nxt):
            raise ValueError(f"too many {s} samples for CelebA's file numbering "
                             f"(at most {min(nxt) - _CELEBA_FIRST[s]})")
        yield s, sample, number


# --- writers ---------------------------------------------------------------------------------------

def _write_rafd(root: Path, samples, quality: int, seed: int) -> None:
    left, top, right, bottom = RAFD_CROP
    gazes = labels.RAFD_GAZES
    seen = Counter()
    for _, sample in samples:
        identity = int(_require(sample, "identity", "rafd"))
        expression = int(_require(sample, "expression", "rafd"))
        if not 0 <= expression < len(labels.EXPRESSIONS):
            raise ValueError(f"RaFD needs one of {labels.EXPRESSIONS}; a sample has expression {expression} "
                             "(free-AU samples cannot be named)")
        male = "attributes" in sample and float(sample["attributes"][labels.ATTRIBUTES.index("Male")]) > 0.5
        repeat = seen[identity, expression]
        seen[identity, expression] += 1
        if repeat >= len(gazes):
            raise ValueError(f"identity {identity} has more than {len(gazes)} '{labels.EXPRESSIONS[expression]}' "
                             "samples; RaFD has one per gaze")
        name = (f"Rafd090_{identity:02d}_Caucasian_{'male' if male else 'female'}_"
                f"{labels.EXPRESSIONS[expression]}_{gazes[repeat]}.jpg")
        face = _face(sample, right - left)
        paste_with_edge(face, RAFD_IMAGE_SIZE, left, top).save(root / name, quality=quality)


def _write_affectnet(root: Path, samples, quality: int, seed: int) -> None:
    lists, images = root / "Manually_Annotated_file_lists", root / "Manually_Annotated_Images"
    lists.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = {"training.csv": [], "validation.csv": []}
    for k, (s, sample) in enumerate(samples):
        size = sample["image"].shape[-1]
        side = int(round(size * rng.uniform(1.5, 3.0)))
        l, t, r, b = (int(v) for v in rng.integers(0, side // 2 + 1, size=4))
        rel = f"{k // 1000 + 1}/{k:06d}.jpg"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        canvas = paste_with_edge(_face(sample, side), (l + side + r, t + side + b), l, t)
        canvas.save(images / rel, quality=quality)
        landmarks = np.asarray(_require(sample, "landmarks", "affectnet"), dtype=np.float64)
        pts = scale_points(landmarks, side / size) + (l, t)
        expression = int(_require(sample, "expression", "affectnet"))
        code = _AFFECTNET_CODE.get(expression, _AFFECTNET_NO_EXPRESSION)
        rows["training.csv" if s == "train" else "validation.csv"].append(
            [rel, l, t, side, side, ";".join(f"{v:.2f}" for v in pts.reshape(-1)), code, "0.0", "0.0"])
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
              "expression", "valence", "arousal"]  # valence / arousal are not modelled: written as 0
    for name, table in rows.items():
        with open(lists / name, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header] + table)


def _write_celeba(root: Path, samples, quality: int, seed: int) -> None:
    images = root / "img_align_celeba"
    images.mkdir(exist_ok=True)
    width, height, crop = 178, 218, 170
    left, top, _, _ = center_crop_box(width, height, crop)
    attrs, partition, identity = [], [], []
    for s, sample, number in _celeba_names(samples):
        name = f"{number:06d}.jpg"
        paste_with_edge(_face(sample, crop), (width, height), left, top).save(images / name, quality=quality)
        attrs.append((name, _attribute_values(sample, "celeba")))
        partition.append(f"{name} {_PARTITION_CODE[s]}")
        if "identity" in sample:
            identity.append(f"{name} {int(sample['identity'])}")
    (root / "list_attr_celeba.txt").write_text(_attribute_lines(attrs))
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    if identity:
        (root / "identity_CelebA.txt").write_text("\n".join(identity) + "\n")


def _write_celebamask_hq(root: Path, samples, quality: int, seed: int) -> None:
    images, anno = root / "CelebA-HQ-img", root / "CelebAMask-HQ-mask-anno"
    images.mkdir(exist_ok=True)
    mapping, partition, attrs = ["idx orig_idx orig_file"], [], []
    for idx, (s, sample, number) in enumerate(_celeba_names(samples)):
        _face(sample, 1024).save(images / f"{idx}.jpg", quality=quality)
        _write_part_masks(np.asarray(_require(sample, "mask", "celebamask-hq")), idx, anno)
        orig_file = f"{number:06d}.jpg"
        mapping.append(f"{idx} {number - 1} {orig_file}")
        partition.append(f"{orig_file} {_PARTITION_CODE[s]}")
        if "attributes" in sample:
            attrs.append((f"{idx}.jpg", _attribute_values(sample, "celebamask-hq")))
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    if attrs:
        (root / "CelebAMask-HQ-attribute-anno.txt").write_text(_attribute_lines(attrs))


def _write_part_masks(mask: np.ndarray, idx: int, anno: Path, side: int = 512) -> None:
    """One white-on-black 512 px PNG per part present (``<idx // 2000>/<idx:05d>_<part>.png``)."""
    big = np.asarray(Image.fromarray(mask.astype(np.uint8), "L").resize((side, side), Image.NEAREST))
    folder = anno / str(idx // 2000)
    folder.mkdir(parents=True, exist_ok=True)
    for value, part in enumerate(labels.CELEBAMASK_PART_FILES, start=1):
        region = big == value
        if region.any():
            Image.fromarray(region.astype(np.uint8) * 255, "L").save(folder / f"{idx:05d}_{part}.png")


def _write_openface(root: Path, samples, quality: int, seed: int) -> None:
    images, aus_dir = root / "imgs", root / "aus_openface"
    images.mkdir(exist_ok=True)
    aus_dir.mkdir(exist_ok=True)
    header = ["face", "confidence", *labels.OPENFACE_AU_COLUMNS, *(f"{a}_c" for a in labels.AUS)]
    ids = {"train": [], "test": []}
    for k, (s, sample) in enumerate(samples):
        name = f"{k:06d}"
        to_pil(sample["image"]).save(images / f"{name}.jpg", quality=quality)
        intensity = np.asarray(_require(sample, "aus", "openface"), dtype=np.float64) * labels.OPENFACE_AU_SCALE
        row = ["0", "0.98", *(f"{v:.3f}" for v in intensity), *(f"{float(v >= 1.0):.2f}" for v in intensity)]
        (aus_dir / f"{name}.csv").write_text(", ".join(header) + "\n" + ", ".join(row) + "\n")
        ids[s].append(f"{name}.jpg")
    for s, names in ids.items():
        (root / f"{s}_ids.csv").write_text("".join(f"{n}\n" for n in names))
