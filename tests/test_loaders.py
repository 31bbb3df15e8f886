"""The real-data loaders, on SynthFaces exported in each dataset's layout (faceedit_nb.data.export).

Round trips prove the crop coordinates and label parsing (the loaded sample matches the SynthFaces
sample it was written from); broken copies of the fixtures prove the errors name the file and problem.
"""
import functools
import collections
import pickle
import random
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit_nb import labels
from faceedit_nb.data import formats as F
from faceedit_nb.data.export import export_synthfaces
from faceedit_nb.data.synthfaces import SynthFaces

SIZE, IDS = 64, 5  # SynthFaces at 64 px with 5 identities per split
SPLITS3 = ("train", "val", "test")
# Mean |difference| in [-1, 1] after the format's resize + JPEG round trip: per image, and over a data
# set (about 0.015 when right; a crop shifted by half a pixel of the 64 px face gives about 0.028).
IMAGE_TOL, MEAN_IMAGE_TOL = 0.05, 0.025


@functools.lru_cache(maxsize=None)
def synth(split, n):
    """The SynthFaces samples an export wrote (rendered once per test session)."""
    return tuple(SynthFaces(split, size=SIZE, n=n, seed=0, n_identities=IDS))


def export(tmp_path_factory, fmt, n, split):
    root = tmp_path_factory.mktemp(fmt)
    return export_synthfaces(root, fmt, n=n, size=SIZE, split=split, n_identities=IDS)


def broken_copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def edit_row(path, line, change, sep=","):
    """Rewrite line ``line`` (1-based) of a label file: ``change`` maps its fields to new fields."""
    lines = path.read_text().splitlines()
    lines[line - 1] = sep.join(change(lines[line - 1].split(sep)))
    path.write_text("\n".join(lines) + "\n")


def set_field(k, value):
    return lambda fields: fields[:k] + [value] + fields[k + 1:]


def image_diff(a, b):
    return (a - b).abs().mean().item()


def check_images(pairs):
    """(loaded image, SynthFaces image) pairs agree image by image and on average."""
    diffs = [image_diff(a, b) for a, b in pairs]
    assert max(diffs) < IMAGE_TOL and np.mean(diffs) < MEAN_IMAGE_TOL, (max(diffs), np.mean(diffs))


# --- RaFD ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rafd_root(tmp_path_factory):
    return export(tmp_path_factory, "rafd", 8 * IDS, "train")  # every identity x every expression


def test_rafd_round_trip(rafd_root):
    ref = {(s["identity"], s["expression"]): s for s in synth("train", 8 * IDS)}
    ds = F.RaFD(rafd_root, split="all", size=SIZE)
    assert len(ds) == len(ref)
    pairs = []
    for sample in ds:
        assert set(sample) == {"image", "identity", "expression"}
        assert sample["image"].shape == (3, SIZE, SIZE) and sample["image"].dtype == torch.float32
        pairs.append((sample["image"], ref[sample["identity"], sample["expression"]]["image"]))
    check_images(pairs)


def test_rafd_crop_matters(rafd_root):
    """A centred square crop of the 681 x 1024 image is not the face: the MatchGAN box is."""
    ref = {(s["identity"], s["expression"]): s for s in synth("train", 8 * IDS)}
    sample = F.RaFD(rafd_root, split="all", size=SIZE, crop="center")[0]
    assert image_diff(sample["image"], ref[sample["identity"], sample["expression"]]["image"]) > 2 * IMAGE_TOL


def test_rafd_identity_split(rafd_root):
    train = F.RaFD(rafd_root, "train", SIZE, n_train_identities=3)
    test = F.RaFD(rafd_root, "test", SIZE, n_train_identities=3)
    order = list(range(IDS))
    random.Random(1234).shuffle(order)
    assert train.train_identities == tuple(sorted(order[:3]))
    assert {s["identity"] for s in train} == set(order[:3])
    assert {s["identity"] for s in test} == set(order[3:])
    assert len(train) == 3 * 8 and len(test) == 2 * 8
    assert sorted({s["expression"] for s in test}) == list(range(8))


def test_rafd_n_train_identities_exceeds_subjects(rafd_root):
    """An empty test split says why: more train identities asked for than subjects found."""
    message = (r"test split is empty: n_train_identities=60 but only 5 subjects were found .*"
               r"Fix: pass n_train_identities=4 or fewer")
    with pytest.raises(ValueError, match=message):
        F.RaFD(rafd_root, "test", SIZE)  # 60 train identities by default: nobody left for test
    with pytest.raises(ValueError, match="test split is empty: n_train_identities=5 but only 5"):
        F.RaFD(rafd_root, "test", SIZE, n_train_identities=5)
    with pytest.warns(UserWarning, match="n_train_identities=60 but only 5 subjects .* all 5 are train"):
        assert len(F.RaFD(rafd_root, "train", SIZE)) == 8 * IDS
    with pytest.raises(ValueError, match=r"n_train_identities must be a whole number >= 0, got -1"):
        F.RaFD(rafd_root, "train", SIZE, n_train_identities=-1)  # was: every subject but one, silently


def test_rafd_angles_and_gazes(rafd_root):
    """NaN or fractional angles, a bare number, angles or gazes no image has: each says what is wrong."""
    with pytest.raises(ValueError, match=r"angles must be whole degrees .*got \[nan\]"):
        F.RaFD(rafd_root, "all", SIZE, angles=(float("nan"),))
    with pytest.raises(ValueError, match=r"got \[90\.5\]"):
        F.RaFD(rafd_root, "all", SIZE, angles=(90.5,))
    with pytest.raises(TypeError, match=r"angles takes a list .*got 90; write angles=\(90,\)"):
        F.RaFD(rafd_root, "all", SIZE, angles=90)
    with pytest.raises(ValueError, match=r"no image at angle\(s\) \[45\] .*have angles \[90\]"):
        F.RaFD(rafd_root, "train", SIZE, angles=(45, 90))
    with pytest.raises(TypeError, match=r"gazes takes a list of names, got the string 'left'"):
        F.RaFD(rafd_root, "all", SIZE, gazes="left")
    with pytest.raises(ValueError, match=r"no image with gaze\(s\) \['up'\]"):
        F.RaFD(rafd_root, "all", SIZE, gazes=["frontal", "up"])
    assert len(F.RaFD(rafd_root, "all", SIZE, gazes=["frontal"])) == 8 * IDS


def test_rafd_finds_images_in_subfolders(rafd_root, tmp_path):
    (tmp_path / "RaFD").mkdir()
    shutil.copytree(rafd_root, tmp_path / "RaFD" / "frontal")
    assert len(F.RaFD(tmp_path / "RaFD", "all", SIZE)) == 8 * IDS


def test_rafd_wrong_image_size(rafd_root, tmp_path):
    root = broken_copy(rafd_root, tmp_path)
    name = "Rafd090_00_Caucasian_female_angry_frontal.jpg"
    Image.new("RGB", (256, 256), (128, 100, 90)).save(root / name)
    ds = F.RaFD(root, "all", SIZE)
    index = [i for i, item in enumerate(ds.items) if item[0].name == name][0]
    with pytest.raises(ValueError, match=r"Rafd090_00_Caucasian_female_angry_frontal\.jpg.*681 x 1024"):
        ds[index]
    assert F.RaFD(root, "all", SIZE, crop="center")[index]["image"].shape == (3, SIZE, SIZE)


def test_rafd_bad_file_name(rafd_root, tmp_path):
    root = broken_copy(rafd_root, tmp_path)
    (root / "Rafd090_01_Caucasian_female_sleepy_frontal.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="sleepy"):
        F.RaFD(root, "all", SIZE)


def test_rafd_corrupt_image(rafd_root, tmp_path):
    root = broken_copy(rafd_root, tmp_path)
    victim = sorted(root.glob("Rafd*.jpg"))[0]
    truncate(victim)
    ds = F.RaFD(root, "all", SIZE)
    with pytest.raises(F.CorruptImageError, match=victim.name):
        ds[0]
    with pytest.warns(UserWarning, match="corrupt image: 1"):
        skipping = F.RaFD(root, "all", SIZE, on_corrupt="skip")
    assert len(skipping) == 8 * IDS - 1 and skipping.skipped == {"corrupt image": 1}


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*Rafd<angle>"):
        F.RaFD(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="RaFD images"):
        F.RaFD(tmp_path)  # exists, but holds no RaFD image


# --- AffectNet -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def affectnet_root(tmp_path_factory):
    return export(tmp_path_factory, "affectnet", 8, SPLITS3)


def test_affectnet_round_trip(affectnet_root):
    for split, refs in (("train", list(synth("train", 8))),
                        ("val", list(synth("val", 8)) + list(synth("test", 8)))):
        ds = F.AffectNet(affectnet_root, split, SIZE)
        assert len(ds) == len(refs) and ds.skipped == {}
        for sample, ref in zip(ds, refs):
            assert set(sample) == {"image", "expression", "landmarks"}
            assert sample["expression"] == ref["expression"]
            assert torch.allclose(sample["landmarks"], ref["landmarks"], atol=0.05)
        check_images((sample["image"], ref["image"]) for sample, ref in zip(ds, refs))


def test_affectnet_test_split_is_validation(affectnet_root):
    assert len(F.AffectNet(affectnet_root, "test", SIZE)) == len(F.AffectNet(affectnet_root, "val", SIZE))


def test_affectnet_drops_codes_8_to_10(affectnet_root, tmp_path):
    root = broken_copy(affectnet_root, tmp_path)
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = csv_path.read_text().splitlines()
    extra = []
    for code in (8, 9, 9, 10):
        fields = lines[1].split(",")
        fields[6] = str(code)
        extra.append(",".join(fields))
    csv_path.write_text("\n".join(lines + extra) + "\n")
    with pytest.warns(UserWarning, match="skipped 4"):
        ds = F.AffectNet(root, "train", SIZE)
    assert ds.skipped == {"None": 1, "Uncertain": 2, "Non-Face": 1}
    assert len(ds) == 8


@pytest.mark.parametrize("change, message", [
    (lambda f: f[:-1], r"training\.csv, line 3: 8 columns, expected 9"),
    (lambda f: f[:6] + ["happy"] + f[7:], r"training\.csv, line 3: expression should be an integer"),
    (lambda f: f[:6] + ["12"] + f[7:], r"line 3: expression code 12"),
    (lambda f: f[:5] + ["1;2;3"] + f[6:], r"line 3: facial_landmarks has 3 numbers"),
])
def test_affectnet_bad_row(affectnet_root, tmp_path, change, message):
    root = broken_copy(affectnet_root, tmp_path)
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = csv_path.read_text().splitlines()
    lines[2] = ",".join(change(lines[2].split(",")))
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(F.LabelFileError, match=message):
        F.AffectNet(root, "train", SIZE)


def test_affectnet_missing_parts(affectnet_root, tmp_path):
    root = broken_copy(affectnet_root, tmp_path)
    shutil.rmtree(root / "Manually_Annotated_Images")
    with pytest.raises(FileNotFoundError, match=r"(?s)Manually_Annotated_Images.*training\.csv"):
        F.AffectNet(root)
    (root / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    (root / "Manually_Annotated_Images").mkdir()
    with pytest.raises(FileNotFoundError, match="validation.csv"):
        F.AffectNet(root, "val")


def test_affectnet_nan_landmark(affectnet_root, tmp_path):
    root = broken_copy(affectnet_root, tmp_path)
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    edit_row(csv_path, 3, lambda f: f[:5] + [";".join(f[5].split(";")[:3] + ["nan"] + f[5].split(";")[4:])] + f[6:])
    message = (r"training\.csv, line 3: facial_landmarks number 4 \(the y of landmark 2\) is nan; every "
               r"landmark needs finite coordinates\. Fix: correct or delete this row")
    with pytest.raises(F.LabelFileError, match=message):
        F.AffectNet(root, "train", SIZE)  # was: loaded, with a NaN landmark


def test_affectnet_face_box_outside_image(affectnet_root, tmp_path):
    """A face box must lie inside its photo: one pixel past the right edge or above the top is refused."""
    root = broken_copy(affectnet_root, tmp_path)
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    images = root / "Manually_Annotated_Images"
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    width, height = Image.open(images / rows[2][0]).size
    edit_row(csv_path, 3, set_field(1, str(width - int(rows[2][3]) + 1)))  # x + w = width + 1
    edit_row(csv_path, 5, set_field(2, "-1"))
    flush_right = set_field(1, str(Image.open(images / rows[5][0]).size[0] - int(rows[5][3])))
    edit_row(csv_path, 6, flush_right)  # x + w = width: inside
    ds = F.AffectNet(root, "train", SIZE)
    message = (rf"training\.csv, line 3: the face box \(face_x={width - int(rows[2][3]) + 1}, .*\) reaches "
               rf"outside the {width} x {height} image 1/000001\.jpg\. Fix: correct the row, or pass "
               r"on_corrupt='skip'")
    with pytest.raises(F.SampleError, match=message):
        ds[1]  # was: a crop padded with black, silently
    with pytest.raises(F.SampleError, match=r"line 5: the face box \(face_x=\d+, face_y=-1"):
        ds[3]
    assert ds[4]["image"].shape == (3, SIZE, SIZE)
    with pytest.warns(UserWarning, match=r"face box outside the image: 2 \(1/000001\.jpg, 1/000003\.jpg\)"):
        skipping = F.AffectNet(root, "train", SIZE, on_corrupt="skip")
    assert skipping.skipped == {"face box outside the image": 2} and len(skipping) == 6
    assert skipping.skipped_files == {"face box outside the image": ["1/000001.jpg", "1/000003.jpg"]}


# --- CelebA ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return export(tmp_path_factory, "celeba", 6, SPLITS3)


def test_celeba_round_trip_and_partition(celeba_root):
    for split, first in (("train", 1), ("val", 162772), ("test", 182639)):
        ds = F.CelebA(celeba_root, split, size=SIZE)
        refs = list(synth(split, 6))
        assert len(ds) == 6
        assert [ds._files[i] for i in ds.items] == [f"{first + k:06d}.jpg" for k in range(6)]
        for sample, ref in zip(ds, refs):
            assert set(sample) == {"image", "attributes", "identity"}
            assert torch.equal(sample["attributes"], ref["attributes"])
            assert sample["identity"] == ref["identity"]
        check_images((sample["image"], ref["image"]) for sample, ref in zip(ds, refs))
    assert len(F.CelebA(celeba_root, "all", size=SIZE)) == 18


def test_celeba_attribute_selection(celeba_root):
    chosen = ("Young", "Smiling", "Male")
    ds = F.CelebA(celeba_root, "train", attributes=chosen, size=SIZE)
    ref = synth("train", 6)[2]["attributes"]
    expect = torch.tensor([ref[labels.ATTRIBUTES.index("Young")], 0.0, ref[labels.ATTRIBUTES.index("Male")]])
    assert torch.equal(ds[2]["attributes"], expect)  # Smiling is not rendered: exported as -1


def test_celeba_unknown_attribute(celeba_root):
    with pytest.raises(ValueError, match=r"(?s)Blue_Hair.*Black_Hair, Blond_Hair"):
        F.CelebA(celeba_root, attributes=("Blue_Hair", "Male"))


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls[:4] + [ls[4].rsplit(" ", 1)[0]] + ls[5:], r"list_attr_celeba\.txt, line 5: 40 fields"),
    (lambda ls: ls[:3] + [ls[3].replace(" 1", " x", 1)] + ls[4:], r"list_attr_celeba\.txt, line 4: .*integer"),
    (lambda ls: ls[:3] + [ls[3].replace("-1", " 0", 1)] + ls[4:], r"line 4: attribute values must be -1 or 1"),
    (lambda ls: ls[:-1], r"line 1: the header announces 18 images but the file lists 17"),
])
def test_celeba_bad_attribute_file(celeba_root, tmp_path, edit, message):
    root = broken_copy(celeba_root, tmp_path)
    path = root / "list_attr_celeba.txt"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(F.LabelFileError, match=message):
        F.CelebA(root)


def test_celeba_bad_partition_row(celeba_root, tmp_path):
    root = broken_copy(celeba_root, tmp_path)
    path = root / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].split()[0] + " train"
    path.write_text("\n".join(lines) + "\n")
    message = r"list_eval_partition\.txt, line 2: partition should be an integer"
    with pytest.raises(F.LabelFileError, match=message):
        F.CelebA(root)


def test_partition_codes_other_than_0_1_2(celeba_root, hq_root, tmp_path):
    """A partition code 3 used to drop the image from every split, silently."""
    root = broken_copy(celeba_root, tmp_path)
    path = root / "list_eval_partition.txt"
    edit_row(path, 2, set_field(1, "3"), sep=" ")
    message = (r"list_eval_partition\.txt, line 2: partition 3 of 000002\.jpg is not one of 0 \(train\), "
               r"1 \(val\), 2 \(test\)\. Fix: correct this line")
    with pytest.raises(F.LabelFileError, match=message):
        F.CelebA(root, "val", size=SIZE)
    edit_row(path, 2, set_field(1, "0"), sep=" ")
    path.write_text(path.read_text() + "000002.jpg 1\n")
    with pytest.raises(F.LabelFileError, match=r"line 19: 000002\.jpg is listed again \(first on line 2\)"):
        F.CelebA(root, "val", size=SIZE)
    hq = tmp_path / "hq"
    shutil.copytree(hq_root, hq)
    edit_row(hq / "list_eval_partition.txt", 1, set_field(1, "-1"), sep=" ")
    with pytest.raises(F.LabelFileError, match=r"line 1: partition -1 of 000001\.jpg is not one of 0 \(train"):
        F.CelebAMaskHQ(hq, "test", SIZE)


@pytest.mark.parametrize("crop", [0, -5, 170.5, float("nan"), True])
def test_celeba_bad_crop(celeba_root, crop):
    # was: crop=0 gave all-black images; -5 "Coordinate 'right' is less than 'left'" at the first sample
    message = rf"CelebA: crop is the side in pixels .* must be a whole number >= 1, got {crop!r}"
    with pytest.raises(ValueError, match=message):
        F.CelebA(celeba_root, "train", size=SIZE, crop=crop)


def test_attributes_as_a_string(celeba_root, hq_root):
    """attributes="Smiling" used to be read as the letters S, m, i, ... ("unknown attribute(s) ['S', ...]")."""
    for loader, root in ((F.CelebA, celeba_root), (F.CelebAMaskHQ, hq_root)):
        with pytest.raises(TypeError, match=r"attributes takes a list of names, got the string 'Smiling'; "
                                            r"write attributes=\['Smiling'\]"):
            loader(root, "train", size=SIZE, attributes="Smiling")
    assert F.CelebA(celeba_root, "train", size=SIZE, attributes=["Smiling"])[0]["attributes"].shape == (1,)


def test_celeba_missing_files(celeba_root, tmp_path):
    root = broken_copy(celeba_root, tmp_path)
    (root / "list_eval_partition.txt").unlink()
    assert len(F.CelebA(root, "all")) == 18  # "all" needs no partition file
    with pytest.raises(FileNotFoundError, match=r"(?s)list_eval_partition\.txt.*0 train, 1 val, 2 test"):
        F.CelebA(root, "train")
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        F.CelebA(root, "all")
    shutil.rmtree(root / "img_align_celeba")
    with pytest.raises(FileNotFoundError, match="img_align_celeba"):
        F.CelebA(root, "all")


def test_celeba_google_drive_layout(celeba_root, tmp_path):
    """The Img/, Anno/, Eval/ folders of the official download work as well."""
    root = tmp_path / "CelebA"
    for sub, name in (("Img", "img_align_celeba"), ("Anno", "list_attr_celeba.txt"),
                      ("Anno", "identity_CelebA.txt"), ("Eval", "list_eval_partition.txt")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / name).symlink_to(celeba_root / name)
    ds = F.CelebA(root, "test", size=SIZE)
    assert len(ds) == 6 and ds[0]["identity"] == synth("test", 6)[0]["identity"]


def test_celeba_corrupt_image(celeba_root, tmp_path):
    root = broken_copy(celeba_root, tmp_path)
    truncate(root / "img_align_celeba" / "000002.jpg")
    ds = F.CelebA(root, "train", size=SIZE)
    with pytest.raises(F.CorruptImageError, match="000002.jpg"):
        ds[1]
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg at all")
    with pytest.warns(UserWarning, match="corrupt image: 2"):
        ds = F.CelebA(root, "train", size=SIZE, on_corrupt="skip")
    assert len(ds) == 4 and ds.skipped == {"corrupt image": 2}
    with pytest.raises(ValueError, match="on_corrupt"):
        F.CelebA(root, on_corrupt="ignore")


# --- CelebAMask-HQ ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hq_root(tmp_path_factory):
    return export(tmp_path_factory, "celebamask-hq", 4, SPLITS3)


def test_celebamask_hq_round_trip(hq_root):
    for split in SPLITS3:
        ds = F.CelebAMaskHQ(hq_root, split, size=SIZE)
        refs = list(synth(split, 4))
        assert len(ds) == 4
        for sample, ref in zip(ds, refs):
            assert set(sample) == {"image", "mask", "attributes"}
            assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (SIZE, SIZE)
            assert torch.equal(sample["mask"], ref["mask"])
            assert torch.equal(sample["attributes"], ref["attributes"])
        check_images((sample["image"], ref["image"]) for sample, ref in zip(ds, refs))


def test_celebamask_hq_mask_resize(hq_root):
    """Nearest-neighbour resizing keeps labels valid and agrees with the exported mask."""
    ref = synth("train", 4)[0]["mask"]
    small = F.CelebAMaskHQ(hq_root, "train", size=32)[0]["mask"]
    assert torch.equal(small, ref[1::2, 1::2])
    assert set(small.unique().tolist()) <= set(range(len(labels.PARSING_CLASSES)))


def test_celebamask_hq_g_partition_fallback(hq_root, tmp_path):
    root = broken_copy(hq_root, tmp_path)
    (root / "list_eval_partition.txt").unlink()
    for split in SPLITS3:
        assert F.CelebAMaskHQ(root, split, SIZE).items == F.CelebAMaskHQ(hq_root, split, SIZE).items


def test_merge_part_masks_follows_g_mask_order(tmp_path):
    """Later parts in g_mask.py's list overwrite earlier ones; label = index in PARSING_CLASSES."""
    folder = tmp_path / "0"
    folder.mkdir()

    def part(name, box):
        arr = np.zeros((512, 512), np.uint8)
        arr[box] = 255
        Image.fromarray(arr, "L").save(folder / f"00007_{name}.png")

    part("hair", np.s_[0:300, :])  # hair comes after skin and nose in the official order
    part("skin", np.s_[100:512, 100:400])
    part("nose", np.s_[200:260, 230:270])
    label = F.merge_part_masks(7, tmp_path)
    P = labels.PARSING_CLASSES
    assert label[50, 50] == P.index("hair") and label[150, 150] == P.index("hair")
    assert label[400, 150] == P.index("skin") and label[230, 250] == P.index("hair")
    assert label[400, 450] == 0
    with pytest.raises(FileNotFoundError, match="no part mask of image 8"):
        F.merge_part_masks(8, tmp_path)


def test_celebamask_hq_mask_shapes(hq_root, tmp_path):
    """Image and masks are both resized to a square: a non-square mask or image would not line up."""
    root = broken_copy(hq_root, tmp_path)
    for part in (root / "CelebAMask-HQ-mask-anno" / "0").glob("00001_*.png"):
        Image.open(part).resize((512, 256), Image.NEAREST).save(part)
    image = root / "CelebA-HQ-img" / "2.jpg"
    Image.open(image).resize((1024, 768)).save(image)
    ds = F.CelebAMaskHQ(root, "train", SIZE)
    message = (r"the part masks of image 1 \(CelebAMask-HQ-mask-anno/0/00001_\*\.png\) are 512 x 256 \(w x h\), "
               r"not square; .*Fix: replace them with the official files")
    with pytest.raises(F.SampleError, match=message):
        ds[1]  # was: a squashed mask, silently
    with pytest.raises(F.SampleError, match=r"image 2\.jpg is 1024 x 768 \(w x h\), not the square aspect of "
                                            r"its 512 x 512 part masks"):
        ds[2]
    with pytest.warns(UserWarning, match=r"mask shape: 2 \(1\.jpg, 2\.jpg\)"):
        skipping = F.CelebAMaskHQ(root, "train", SIZE, on_corrupt="skip")
    assert skipping.skipped == {"mask shape": 2} and skipping.items == [0, 3]


def test_celebamask_hq_errors(hq_root, tmp_path):
    root = broken_copy(hq_root, tmp_path)
    part = sorted((root / "CelebAMask-HQ-mask-anno" / "0").glob("00001_*.png"))[0]
    truncate(part)
    with pytest.raises(F.CorruptImageError, match=part.name):
        F.CelebAMaskHQ(root, "all", SIZE)[1]
    mapping = root / "CelebA-HQ-to-CelebA-mapping.txt"
    lines = mapping.read_text().splitlines()
    mapping.write_text("\n".join(lines[:3] + ["2 162773"] + lines[4:]) + "\n")
    with pytest.raises(F.LabelFileError, match=r"CelebA-HQ-to-CelebA-mapping\.txt, line 4: 2 fields"):
        F.CelebAMaskHQ(root, "train", SIZE)
    shutil.rmtree(root / "CelebAMask-HQ-mask-anno")
    with pytest.raises(FileNotFoundError, match=r"(?s)CelebAMask-HQ-mask-anno.*<i:05d>_<part>\.png"):
        F.CelebAMaskHQ(root, "train", SIZE)


# --- OpenFace --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def openface_root(tmp_path_factory):
    return export(tmp_path_factory, "openface", 8, ("train", "test"))


def test_openface_dataset_round_trip(openface_root):
    for split in ("train", "test"):
        ds = F.OpenFaceAUs(openface_root, split, size=SIZE)
        refs = list(synth(split, 8))
        assert len(ds) == 8
        for sample, ref in zip(ds, refs):
            assert set(sample) == {"image", "aus"}
            assert torch.allclose(sample["aus"], ref["aus"], atol=1e-3)
        check_images((sample["image"], ref["image"]) for sample, ref in zip(ds, refs))


def test_read_openface_csv_real_header(tmp_path):
    """OpenFace FeatureExtraction's header (spaces after commas); values / 5, clipped to [0, 1]."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success", "gaze_0_x",
            *labels.OPENFACE_AU_COLUMNS, *(f"{a}_c" for a in labels.AUS)]
    rows = [[1, 0, 0.0, 0.98, 1, 0.1, *np.linspace(0, 5, 17), *[1.0] * 17],
            [2, 0, 0.04, 0.97, 1, 0.1, 6.0, -0.5, *[2.5] * 15, *[0.0] * 17]]
    path = tmp_path / "video.csv"
    path.write_text(", ".join(cols) + "\n" + "\n".join(", ".join(str(v) for v in r) for r in rows) + "\n")
    with pytest.warns(UserWarning, match=r"clipped 2 AU intensities outside OpenFace's range 0\.\.5 .*"
                                         r"row 2 AU01_r = 6, row 2 AU02_r = -0\.5"):
        aus = F.read_openface_csv(path)
    assert aus.shape == (2, 17)
    assert torch.allclose(aus[0], torch.linspace(0, 1, 17), atol=1e-6)
    assert aus[1, 0] == 1.0 and aus[1, 1] == 0.0 and torch.allclose(aus[1, 2:], torch.full((15,), 0.5))


def test_read_openface_csv_errors(tmp_path):
    cols = [c for c in labels.OPENFACE_AU_COLUMNS if c not in ("AU05_r", "AU45_r")]
    path = tmp_path / "partial.csv"
    path.write_text("face, confidence, " + ", ".join(cols) + "\n0, 0.9, " + ", ".join(["1.0"] * 15) + "\n")
    message = r"partial\.csv, line 1: missing OpenFace AU columns \['AU05_r', 'AU45_r'\]"
    with pytest.raises(F.LabelFileError, match=message):
        F.read_openface_csv(path)
    path = tmp_path / "bad.csv"
    path.write_text(", ".join(labels.OPENFACE_AU_COLUMNS) + "\n" + ", ".join(["1"] * 17) + "\n"
                    + ", ".join(["1"] * 16 + ["n/a"]) + "\n")
    with pytest.raises(F.LabelFileError, match=r"bad\.csv, line 3: AU intensities should be numbers"):
        F.read_openface_csv(path)
    with pytest.raises(FileNotFoundError, match="FaceLandmarkImg"):
        F.read_openface_csv(tmp_path / "absent.csv")


def test_openface_dataset_errors(openface_root, tmp_path):
    root = broken_copy(openface_root, tmp_path)
    csv_path = root / "aus_openface" / "000001.csv"
    header, row = csv_path.read_text().splitlines()
    other = ", ".join(["1", "0.99"] + ["2.5"] * 17 + ["1.00"] * 17)
    csv_path.write_text("\n".join([header, row, other]) + "\n")  # two faces: the more confident is used
    assert torch.equal(F.OpenFaceAUs(root, "train", SIZE)[1]["aus"], torch.full((17,), 0.5))
    csv_path.unlink()
    with pytest.raises(FileNotFoundError, match="000001.csv"):
        F.OpenFaceAUs(root, "train", SIZE)
    (root / "test_ids.csv").unlink()
    with pytest.raises(FileNotFoundError, match="test_ids.csv"):
        F.OpenFaceAUs(root, "test", SIZE)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_openface_nan_au(openface_root, tmp_path, value):
    """float() reads 'nan' and 'inf': they used to come through as NaN AUs (and 'inf' as 1.0)."""
    root = broken_copy(openface_root, tmp_path)
    csv_path = root / "aus_openface" / "000002.csv"
    column = csv_path.read_text().splitlines()[0].split(", ").index("AU12_r")
    edit_row(csv_path, 2, set_field(column, value), sep=", ")
    message = rf"000002\.csv, line 2: AU12_r is '{value}', not a finite number\. Fix: re-run OpenFace"
    with pytest.raises(F.LabelFileError, match=message):
        F.read_openface_csv(csv_path)
    with pytest.raises(F.LabelFileError, match=message):
        F.OpenFaceAUs(root, "train", SIZE)


def _csv_folder_to_table(root):
    """GANimation's ``{name: 17 raw intensities}`` from the fixture's CSV folder, which is then removed."""
    table = {p.stem: F.read_openface_csv(p)[0].numpy() * labels.OPENFACE_AU_SCALE
             for p in (root / "aus_openface").glob("*.csv")}
    shutil.rmtree(root / "aus_openface")
    return table


def test_openface_pickle_nan(openface_root, tmp_path):
    root = broken_copy(openface_root, tmp_path)
    table = _csv_folder_to_table(root)
    table["000001"][3] = np.nan
    with open(root / "aus_openface.pkl", "wb") as f:
        pickle.dump(table, f)
    with pytest.raises(ValueError, match=r"aus_openface\.pkl holds nan for 000001's AU05_r, not a finite number"):
        F.OpenFaceAUs(root, "train", SIZE)


def test_openface_pickle_layout(openface_root, tmp_path):
    """GANimation's aus_openface.pkl ({name: 17 raw intensities}) instead of the CSV folder."""
    root = broken_copy(openface_root, tmp_path)
    table = _csv_folder_to_table(root)
    with pytest.raises(FileNotFoundError, match="aus_openface"):
        F.OpenFaceAUs(root, "test", SIZE)
    with open(root / "aus_openface.pkl", "wb") as f:
        pickle.dump(table, f)
    ds = F.OpenFaceAUs(root, "test", SIZE)
    assert torch.allclose(ds[2]["aus"], synth("test", 8)[2]["aus"], atol=1e-3)
    # a pickle that would import and run anything else than numpy arrays is refused
    with open(root / "aus_openface.pkl", "wb") as f:
        pickle.dump({**table, "x": collections.Counter()}, f)
    with pytest.raises(pickle.UnpicklingError, match="collections.Counter"):
        F.OpenFaceAUs(root, "test", SIZE)


def test_binary_label_file(celeba_root, tmp_path):
    root = broken_copy(celeba_root, tmp_path)
    path = root / "list_eval_partition.txt"
    path.write_bytes(path.read_bytes()[:30] + b"\xff\xfe\x00garbage")
    with pytest.raises(F.LabelFileError, match=r"list_eval_partition\.txt, line 3: not a UTF-8 text file"):
        F.CelebA(root)


def test_no_warnings_on_clean_data(celeba_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.CelebA(celeba_root, "val", size=SIZE)


# --- listed images that do not exist -------------------------------------------------------------

MISSING = {  # fixture, split, image deleted, its listing and the line that lists it
    "affectnet": ("affectnet_root", "train", "Manually_Annotated_Images/1/000002.jpg",
                  r"Manually_Annotated_file_lists/training\.csv", " \\(line 4\\)"),
    "celeba": ("celeba_root", "train", "img_align_celeba/000003.jpg", r"list_attr_celeba\.txt", ""),
    "celebamask-hq": ("hq_root", "val", "CelebA-HQ-img/5.jpg", r"CelebA-HQ-to-CelebA-mapping\.txt", ""),
    "openface": ("openface_root", "train", "imgs/000003.jpg", r"train_ids\.csv", " \\(line 4\\)"),
}
LOADERS = {"affectnet": F.AffectNet, "celeba": F.CelebA, "celebamask-hq": F.CelebAMaskHQ,
           "openface": F.OpenFaceAUs}


@pytest.mark.parametrize("fmt", sorted(MISSING))
def test_listed_image_missing(fmt, request, tmp_path):
    """A listed image that does not exist: an error at construction naming it (was: FileNotFoundError at
    the first access, or a split one short, silently, for CelebAMask-HQ), or a counted skip."""
    fixture, split, victim, listing, line = MISSING[fmt]
    root = broken_copy(request.getfixturevalue(fixture), tmp_path)
    full = len(LOADERS[fmt](root, split, size=SIZE))
    (root / victim).unlink()
    name = victim.split("/", 1)[1]  # as the listing names it; the message shows the path under root
    message = (rf"1 of the {full} images that .*{listing} lists do not exist: {re.escape(victim)}{line}\. "
               r"Fix: restore them .*, or pass on_corrupt='skip'")
    with pytest.raises(F.MissingImageError, match=message):
        LOADERS[fmt](root, split, size=SIZE)
    with pytest.warns(UserWarning, match=rf"skipped 1 samples: missing image: 1 \({re.escape(name)}\)"):
        skipping = LOADERS[fmt](root, split, size=SIZE, on_corrupt="skip")
    assert len(skipping) == full - 1
    assert skipping.skipped == {"missing image": 1} and skipping.skipped_files == {"missing image": [name]}
