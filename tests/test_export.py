"""export_synthfaces writes the official on-disk layouts (checked here without the loaders)."""
import csv
import functools
import re

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit_nb import labels
from faceedit_nb.data import formats as F
from faceedit_nb.data.export import FORMATS, export_synthfaces
from faceedit_nb.data.synthfaces import SynthFaces
from faceedit_nb.data.transforms import to_tensor

SIZE, IDS = 64, 4


@functools.lru_cache(maxsize=None)
def synth(split, n, **options):
    return tuple(SynthFaces(split, size=SIZE, n=n, seed=0, n_identities=IDS, **options))


def export(tmp_path_factory, fmt, n, split, **options):
    return export_synthfaces(tmp_path_factory.mktemp(fmt), fmt, n=n, size=SIZE, split=split,
                             n_identities=IDS, **options)


def face_region(path, box, size=SIZE):
    with Image.open(path) as img:
        return to_tensor(img.convert("RGB").crop(box).resize((size, size), Image.BILINEAR))


# --- RaFD ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rafd_root(tmp_path_factory):
    return export(tmp_path_factory, "rafd", 8 * IDS, "train")


def test_rafd_files(rafd_root):
    files = sorted(p.name for p in rafd_root.iterdir())
    assert len(files) == 8 * IDS
    pattern = re.compile(r"Rafd090_(\d{2,})_Caucasian_(female|male)_([a-z]+)_frontal\.jpg")
    seen = set()
    samples = {(s["identity"], s["expression"]): s for s in synth("train", 8 * IDS)}
    for name in files:
        m = pattern.fullmatch(name)
        assert m, name
        key = (int(m[1]), labels.expression_index(m[3]))
        male = samples[key]["attributes"][labels.ATTRIBUTES.index("Male")] > 0.5
        assert m[2] == ("male" if male else "female")
        seen.add(key)
    assert seen == set(samples)
    with Image.open(rafd_root / files[0]) as img:
        assert img.size == F.RAFD_IMAGE_SIZE and img.format == "JPEG"


def test_rafd_face_in_matchgan_box_and_edge_fill(rafd_root):
    sample = synth("train", 8 * IDS)[0]
    name = f"Rafd090_{sample['identity']:02d}_Caucasian_*_{labels.EXPRESSIONS[sample['expression']]}_frontal.jpg"
    path = next(rafd_root.glob(name))
    assert (face_region(path, F.RAFD_CROP) - sample["image"]).abs().mean() < 0.03
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    left, top, right, bottom = F.RAFD_CROP
    assert np.abs(arr[top:bottom, 0] - arr[top:bottom, left]).mean() < 6  # edge colour, up to JPEG noise
    assert np.abs(arr[0, left:right] - arr[top, left:right]).mean() < 6


def test_rafd_gazes_and_limits(tmp_path):
    one = synth("train", 1)[0]
    export_synthfaces(tmp_path / "a", "rafd", n=3, size=SIZE, dataset=[one] * 3)
    assert sorted(p.name.rsplit("_", 1)[1] for p in (tmp_path / "a").iterdir()) == \
        ["frontal.jpg", "left.jpg", "right.jpg"]
    with pytest.raises(ValueError, match="more than 3"):
        export_synthfaces(tmp_path / "b", "rafd", n=4, size=SIZE, dataset=[one] * 4)
    free = dict(one, expression=labels.NO_EXPRESSION)
    with pytest.raises(ValueError, match="free-AU"):
        export_synthfaces(tmp_path / "c", "rafd", n=1, size=SIZE, dataset=[free])


# --- CelebA ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return export(tmp_path_factory, "celeba", 3, ("train", "val", "test"))


def test_celeba_attribute_file(celeba_root):
    lines = (celeba_root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "9" and lines[1].split() == list(labels.CELEBA_ATTRIBUTES)
    samples = synth("train", 3) + synth("val", 3) + synth("test", 3)
    for text, sample in zip(lines[2:], samples):
        fields = text.split()
        assert len(fields) == 41
        values = dict(zip(labels.CELEBA_ATTRIBUTES, map(int, fields[1:])))
        for name in labels.CELEBA_ATTRIBUTES:
            if name in labels.ATTRIBUTES:
                assert values[name] == (1 if sample["attributes"][labels.ATTRIBUTES.index(name)] > 0.5 else -1)
            else:
                assert values[name] == -1


def test_celeba_partition_identity_and_images(celeba_root):
    partition = F.read_partition_file(celeba_root / "list_eval_partition.txt")
    assert partition == {"000001.jpg": 0, "000002.jpg": 0, "000003.jpg": 0, "162772.jpg": 1, "162773.jpg": 1,
                         "162774.jpg": 1, "182639.jpg": 2, "182640.jpg": 2, "182641.jpg": 2}
    identity = F.read_partition_file(celeba_root / "identity_CelebA.txt", "identity")
    assert identity["162772.jpg"] == synth("val", 3)[0]["identity"]
    path = celeba_root / "img_align_celeba" / "000001.jpg"
    with Image.open(path) as img:
        assert img.size == (178, 218)
    box = (4, 24, 174, 194)  # CenterCrop(170) of 178 x 218
    assert (face_region(path, box) - synth("train", 3)[0]["image"]).abs().mean() < 0.03


# --- CelebAMask-HQ ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hq_root(tmp_path_factory):
    return export(tmp_path_factory, "celebamask-hq", 2, ("train", "test"))


def test_celebamask_hq_layout(hq_root):
    with Image.open(hq_root / "CelebA-HQ-img" / "0.jpg") as img:
        assert img.size == (1024, 1024)
    mapping = (hq_root / "CelebA-HQ-to-CelebA-mapping.txt").read_text().splitlines()
    assert mapping == ["idx orig_idx orig_file", "0 0 000001.jpg", "1 1 000002.jpg",
                       "2 182638 182639.jpg", "3 182639 182640.jpg"]
    mask = synth("test", 2)[1]["mask"].numpy()
    parts = sorted((hq_root / "CelebAMask-HQ-mask-anno" / "0").glob("00003_*.png"))
    present = {labels.PARSING_CLASSES[v] for v in np.unique(mask) if v}
    assert {p.stem.split("_", 1)[1] for p in parts} == present
    for p in parts:
        arr = np.asarray(Image.open(p))
        assert arr.shape == (512, 512) and set(np.unique(arr)) <= {0, 255}
        value = labels.PARSING_CLASSES.index(p.stem.split("_", 1)[1])
        assert np.array_equal(arr[4::8, 4::8] == 255, mask == value)
    attrs = F.read_attribute_file(hq_root / "CelebAMask-HQ-attribute-anno.txt")
    assert attrs[1] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"] and attrs[2].shape == (4, 40)


# --- AffectNet -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def affectnet_root(tmp_path_factory):
    return export(tmp_path_factory, "affectnet", 4, ("train", "val"))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_affectnet_lists(affectnet_root):
    lists = affectnet_root / "Manually_Annotated_file_lists"
    train, val = read_csv(lists / "training.csv"), read_csv(lists / "validation.csv")
    assert train[0] == ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                        "facial_landmarks", "expression", "valence", "arousal"]
    assert len(train) == 5 and len(val) == 5
    code_of = {labels.expression_index(n): c for c, n in F.AFFECTNET_EXPRESSIONS.items()}
    for row, sample in zip(train[1:], synth("train", 4)):
        x, y, w, h = map(int, row[1:5])
        path = affectnet_root / "Manually_Annotated_Images" / row[0]
        with Image.open(path) as img:
            assert 0 <= x and x + w <= img.size[0] and 0 <= y and y + h <= img.size[1] and w == h
        pts = np.array(row[5].split(";"), dtype=float).reshape(68, 2)
        assert ((pts >= (x - 1, y - 1)) & (pts <= (x + w, y + h))).all()
        assert int(row[6]) == code_of[sample["expression"]]
        assert (face_region(path, (x, y, x + w, y + h)) - sample["image"]).abs().mean() < 0.03


def test_affectnet_free_au_samples_are_code_none(tmp_path_factory):
    root = export(tmp_path_factory, "affectnet", 3, "train", au_mode="random")
    rows = read_csv(root / "Manually_Annotated_file_lists" / "training.csv")
    assert [r[6] for r in rows[1:]] == ["8", "8", "8"]
    with pytest.warns(UserWarning, match="None: 3"), pytest.raises(ValueError, match="empty"):
        F.AffectNet(root, "train", SIZE)


# --- OpenFace --------------------------------------------------------------------------------------

def test_openface_csvs(tmp_path_factory):
    root = export(tmp_path_factory, "openface", 3, ("train", "test"))
    assert (root / "train_ids.csv").read_text().split() == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert (root / "test_ids.csv").read_text().split() == ["000003.jpg", "000004.jpg", "000005.jpg"]
    header, row = (root / "aus_openface" / "000004.csv").read_text().splitlines()
    names = header.split(", ")
    assert names[:2] == ["face", "confidence"]
    assert names[2:19] == list(labels.OPENFACE_AU_COLUMNS)  # GANimation reads content[2:19]
    assert names[19:] == [f"{a}_c" for a in labels.AUS]
    values = np.array(row.split(", "), dtype=float)
    aus = synth("test", 3)[1]["aus"].numpy()
    assert np.allclose(values[2:19], aus * labels.OPENFACE_AU_SCALE, atol=5e-4)
    assert np.array_equal(values[19:], (values[2:19] >= 1.0).astype(float))
    with Image.open(root / "imgs" / "000004.jpg") as img:
        assert img.size == (SIZE, SIZE)


# --- arguments -------------------------------------------------------------------------------------

def test_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'lfw'"):
        export_synthfaces(tmp_path, "lfw", n=1, size=SIZE)
    with pytest.raises(ValueError, match=r"splits must be distinct names among \('train', 'test'\)"):
        export_synthfaces(tmp_path, "openface", n=1, size=SIZE, split="val")
    with pytest.raises(ValueError, match="distinct"):
        export_synthfaces(tmp_path, "celeba", n=1, size=SIZE, split=("train", "train"))
    with pytest.raises(ValueError, match="one split"):
        export_synthfaces(tmp_path, "celeba", n=1, size=SIZE, split=("train", "val"), dataset=[{}])
    with pytest.raises(KeyError, match="'mask'"):
        sample = {k: v for k, v in synth("train", 1)[0].items() if k != "mask"}
        export_synthfaces(tmp_path / "m", "CelebAMask-HQ", n=1, size=SIZE, dataset=[sample])
    assert set(FORMATS) == {"rafd", "affectnet", "celeba", "celebamask-hq", "openface"}


def test_refuses_non_empty_root(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_synthfaces(tmp_path, "openface", n=1, size=SIZE)
    assert export_synthfaces(tmp_path, "openface", n=1, size=SIZE, exist_ok=True) == tmp_path
    assert (tmp_path / "imgs" / "000000.jpg").is_file()


def test_deterministic(tmp_path):
    a = export_synthfaces(tmp_path / "a", "affectnet", n=2, size=SIZE, n_identities=IDS, seed=3)
    b = export_synthfaces(tmp_path / "b", "affectnet", n=2, size=SIZE, n_identities=IDS, seed=3)
    name = "Manually_Annotated_file_lists/training.csv"
    assert (a / name).read_text() == (b / name).read_text()
    assert torch.equal(F.AffectNet(a, size=SIZE)[1]["image"], F.AffectNet(b, size=SIZE)[1]["image"])
