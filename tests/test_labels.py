"""The canonical label orders and the mappings between parsing class sets."""
import pytest
import torch

from faceedit_nb import labels as L


def test_orders_have_the_papers_sizes():
    assert L.EXPRESSIONS == ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
    assert len(L.AUS) == 17 and L.AUS[0] == "AU01" and L.AUS[-1] == "AU45"
    assert len(L.ATTRIBUTES) == 13 and set(L.ATTRIBUTES) <= set(L.CELEBA_ATTRIBUTES)
    assert len(L.CELEBA_ATTRIBUTES) == 40
    assert len(L.PARSING_CLASSES) == 19 and L.PARSING_CLASSES[2] == "nose" and L.PARSING_CLASSES[13] == "hair"
    assert sorted(L.BISENET_CLASSES) == sorted(L.PARSING_CLASSES)
    assert len(L.SECGAN_CLASSES) == 12
    assert L.OPENFACE_AU_COLUMNS[0] == "AU01_r"


def test_bisenet_mapping_round_trips_by_name():
    for i, name in enumerate(L.PARSING_CLASSES):
        assert L.BISENET_CLASSES[int(L.TO_BISENET[i])] == name
    mask = torch.arange(19).repeat(3, 1)
    assert torch.equal(L.bisenet_to_canonical(L.map_mask(mask, "bisenet")), mask)


@pytest.mark.parametrize("to, expected", [
    ("local_parts", {"l_eye": "left_eye_brow", "l_brow": "left_eye_brow", "r_brow": "right_eye_brow",
                     "nose": "nose", "mouth": "mouth_lips", "u_lip": "mouth_lips", "skin": "none", "hair": "none"}),
    ("lssl", {"u_lip": "lips", "l_lip": "lips", "r_eye": "eyes", "skin": "skin", "hair": "other", "mouth": "other"}),
    ("secgan", {"l_brow": "eyebrows", "ear_r": "earrings", "cloth": "others", "hat": "others", "neck_l": "others",
                "neck": "neck", "eye_g": "eyeglasses", "u_lip": "lips"}),
])
def test_coarse_mappings(to, expected):
    names = L.CLASS_SETS[to]
    mask = torch.tensor([L.PARSING_CLASSES.index(k) for k in expected])
    got = [names[int(v)] for v in L.map_mask(mask, to)]
    assert got == list(expected.values())


def test_flip_swaps_sides_and_is_an_involution():
    mask = torch.zeros(4, 6, dtype=torch.long)
    mask[:, 0] = L.PARSING_CLASSES.index("r_eye")
    mask[:, 1] = L.PARSING_CLASSES.index("l_brow")
    flipped = L.flip_mask(mask)
    assert (flipped[:, -1] == L.PARSING_CLASSES.index("l_eye")).all()
    assert (flipped[:, -2] == L.PARSING_CLASSES.index("r_brow")).all()
    assert torch.equal(L.flip_mask(flipped), mask)


def test_map_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown class set"):
        L.map_mask(torch.zeros(2, 2), "cityscapes")
    with pytest.raises(ValueError, match="0..18"):
        L.map_mask(torch.full((2, 2), 19), "secgan")


def test_prototypes_follow_facs():
    active = {e: {L.AUS[i] for i in torch.nonzero(L.prototype_aus(e)).flatten().tolist()} for e in L.EXPRESSIONS}
    assert active["happy"] >= {"AU06", "AU12"}
    assert active["sad"] >= {"AU01", "AU04", "AU15"}
    assert active["surprised"] == {"AU01", "AU02", "AU05", "AU25", "AU26"}
    assert active["angry"] == {"AU04", "AU05", "AU07", "AU23"}
    assert active["disgusted"] >= {"AU09", "AU10"}
    assert active["fearful"] == {"AU01", "AU02", "AU04", "AU05", "AU20", "AU25", "AU26"}
    assert active["contemptuous"] == {"AU12", "AU14"}
    assert active["neutral"] == set()
    assert L.PROTOTYPES.shape == (8, 17)
    with pytest.raises(ValueError, match="unknown expression"):
        L.expression_index("smug")
