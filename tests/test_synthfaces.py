"""SynthFaces: determinism, shapes at every size, labels that agree with the pixels, paired renders."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from faceedit_nb import labels as L
from faceedit_nb.data import SynthFaces, identity_attributes, render

C = {name: i for i, name in enumerate(L.PARSING_CLASSES)}
A = {name: i for i, name in enumerate(L.ATTRIBUTES)}


@pytest.fixture(scope="module")
def faces128():
    ds = SynthFaces("train", size=128, n=96, n_identities=12, seed=3)
    return ds, ds.batch(torch.arange(len(ds)))


def test_same_seed_same_samples_whatever_the_chunking():
    a = SynthFaces("train", size=48, n=40, seed=7, chunk=256)
    b = SynthFaces("train", size=48, n=40, seed=7, chunk=7)
    for k in (0, 6, 7, 23, 39):
        sa, sb = a[k], b[k]
        assert torch.equal(sa["image"], sb["image"]) and torch.equal(sa["mask"], sb["mask"])
        assert torch.equal(sa["landmarks"], sb["landmarks"]) and sa["expression"] == sb["expression"]
    c = SynthFaces("train", size=48, n=40, seed=8)
    assert not torch.equal(a[0]["image"], c[0]["image"])


def test_splits_are_identity_disjoint():
    ids = {s: set(SynthFaces(s, size=32, n=64).identities.tolist()) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    ds = SynthFaces("test", size=32, n=64)
    assert {ds[k]["identity"] for k in range(64)} <= ids["test"]


@pytest.mark.parametrize("size", [32, 48, 64, 96, 128, 256])
def test_every_size_gives_a_full_sample(size):
    s = SynthFaces("val", size=size, n=2)[1]
    assert s["image"].shape == (3, size, size) and s["image"].dtype == torch.float32
    assert -1 <= s["image"].min() and s["image"].max() <= 1
    assert s["mask"].shape == (size, size) and s["mask"].dtype == torch.int64
    assert 0 <= s["mask"].min() and s["mask"].max() < 19
    assert s["landmarks"].shape == (68, 2) and (s["landmarks"] > 0).all() and (s["landmarks"] < size).all()
    assert s["aus"].shape == (17,) and s["attributes"].shape == (13,) and s["pose"].shape == (3,)
    assert s["style"] in L.STYLES and s["lighting"] in range(3) and s["expression"] in range(8)
    parts = ("skin", "nose", "hair" if not s["attributes"][A["Bald"]] else "skin")
    if size >= 64:  # lips thinner than half a pixel are not labelled at 32-48 px
        parts += ("u_lip", "l_lip")
    for key in parts:
        assert (s["mask"] == C[key]).any(), key


@pytest.mark.parametrize("size", [31, 257])
def test_bad_size_is_a_clear_error(size):
    with pytest.raises(ValueError, match="32 to 256"):
        SynthFaces("train", size=size, n=1)


@pytest.mark.parametrize("size, fix", [("big", ""), (64.0, "; write size=64"),
                                       ("64", "; write size=64, not the string"), (True, "")])
def test_a_size_of_the_wrong_type_is_a_type_error(size, fix):
    """Not "32 to 256" (the range message it got before): the problem is the type."""
    for make in (lambda: SynthFaces("train", size=size, n=1), lambda: render(0, size=size)):
        with pytest.raises(TypeError) as err:
            make()
        msg = str(err.value)
        assert msg.startswith("size must be an int (the image side in pixels") and f"({type(size).__name__})" in msg
        assert fix in msg
    assert SynthFaces("test", size=np.int64(32), n=1, n_identities=np.int64(1))[0]["image"].shape == (3, 32, 32)


def test_zero_or_negative_counts_are_errors_not_the_default():
    """``n_identities=0`` became the split's default (200 people in train) through ``n_identities or 200``."""
    with pytest.raises(ValueError) as err:
        SynthFaces("train", n_identities=0, n=4)
    assert "n_identities must be at least 1" in str(err.value) and "got 0" in str(err.value)
    assert "split's default (200), pass None" in str(err.value)
    assert SynthFaces("train", n_identities=None, n=4).n_identities == 200
    with pytest.raises(ValueError, match="n_identities must be at least 1 .* got -3"):
        SynthFaces("test", n_identities=-3, n=4)
    with pytest.raises(TypeError, match=r"n_identities must be an int .* got 2.5 \(float\)"):
        SynthFaces("test", n_identities=2.5, n=4)
    with pytest.raises(TypeError, match=r"n must be an int \(samples\); got 2.5"):
        SynthFaces("test", n=2.5)


def test_chunk_zero_is_an_error_at_construction():
    """``chunk=0`` was accepted and failed at the first sample with ZeroDivisionError."""
    with pytest.raises(ValueError, match=r"chunk must be at least 1 \(samples rendered together.*got 0"):
        SynthFaces("test", n=4, chunk=0)
    with pytest.raises(ValueError, match="cache_chunks must be at least 0"):
        SynthFaces("test", n=4, cache_chunks=-1)
    assert SynthFaces("test", size=32, n=4, n_identities=2, chunk=1, cache_chunks=0)[3]["image"].shape == (3, 32, 32)


@pytest.mark.parametrize("kwargs, words", [
    (dict(pose_range=(math.nan, 8.0, 6.0)), "pose_range must be 3 finite numbers (maximum |yaw|"),
    (dict(pose_range=(15.0, math.inf, 6.0)), "pose_range must be 3 finite numbers"),
    (dict(flat_fraction=math.nan), "flat_fraction must be a finite number (the share of samples"),
    (dict(lighting_probs=(math.nan, 0.5, 0.5)), "lighting_probs must be 3 finite numbers (the probabilities"),
])
def test_nan_ranges_are_errors(kwargs, words):
    """NaN in pose_range drew NaN poses (the render then failed on 'cannot convert float NaN to integer'),
    in flat_fraction silently no flat sample, in lighting_probs passed the sum check (abs(nan - 1) > 1e-6 is
    False)."""
    with pytest.raises(ValueError) as err:
        SynthFaces("test", n=4, **kwargs)
    assert words in str(err.value) and "NaN or infinity" in str(err.value)


def test_out_of_range_draw_parameters_are_errors():
    with pytest.raises(ValueError, match="pose_range holds maxima .* none is negative"):
        SynthFaces("test", n=4, pose_range=(-5.0, 8.0, 6.0))
    with pytest.raises(ValueError, match=r"flat_fraction is a share of the samples, in \[0, 1\]; got 2.0"):
        SynthFaces("test", n=4, flat_fraction=2.0)
    with pytest.raises(ValueError, match="summing to 1 .* none negative"):
        SynthFaces("test", n=4, lighting_probs=(1.2, -0.2, 0.0))
    with pytest.raises(TypeError, match="flat_fraction must be a number"):
        SynthFaces("test", n=4, flat_fraction="0.5")


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown split"):
        SynthFaces("training")
    with pytest.raises(ValueError, match="au_mode"):
        SynthFaces(au_mode="free")
    with pytest.raises(IndexError, match="out of range"):
        SynthFaces(n=3, size=32)[3]
    with pytest.raises(ValueError, match="lighting"):
        render(0, lighting="bright")
    with pytest.raises(ValueError, match="17 values"):
        render(0, aus=torch.zeros(16))


def test_every_identity_shows_every_expression():
    ds = SynthFaces("train", size=32, n=8 * 5, n_identities=5)
    pairs = {(int(i), int(e)) for i, e in zip(ds.params["identity"], ds.params["expression"])}
    assert len(pairs) == 40


def test_attributes_agree_with_the_mask(faces128):
    _, b = faces128
    m, a = b["mask"], b["attributes"]
    has = lambda c: (m == C[c]).flatten(1).any(1)  # noqa: E731
    assert torch.equal(has("eye_g"), a[:, A["Eyeglasses"]] > 0)
    assert torch.equal(has("hair"), a[:, A["Bald"]] == 0)
    # lips apart show the inside of the mouth
    open_ = a[:, A["Mouth_Slightly_Open"]] > 0
    assert has("mouth")[open_].all()
    assert open_.any() and (~open_).any()
    # the subject's right eye is on the image left, where landmarks 36-41 are
    xs = torch.arange(128).float()
    for i in range(len(m)):
        if (m[i] == C["r_eye"]).sum() > 5 and (m[i] == C["l_eye"]).sum() > 5:
            rx = xs[(m[i] == C["r_eye"]).nonzero()[:, 1]].mean()
            lx = xs[(m[i] == C["l_eye"]).nonzero()[:, 1]].mean()
            assert rx < lx
            assert abs(b["landmarks"][i, 36:42, 0].mean() - rx) < 3


def test_landmarks_agree_with_the_mask(faces128):
    _, b = faces128
    m, lm = b["mask"], b["landmarks"].round().long()
    idx = torch.arange(len(m))
    at = lambda k: m[idx, lm[:, k, 1], lm[:, k, 0]]  # noqa: E731
    assert (at(30) == C["nose"]).float().mean() > 0.95  # nose tip
    mid = lambda i, j: m[idx, ((lm[:, i, 1] + lm[:, j, 1]) / 2).round().long(), lm[:, i, 0]]  # noqa: E731
    for top, bottom, lip in ((51, 62, "u_lip"), (66, 57, "l_lip")):  # between outer and inner lip landmarks
        thick = (lm[:, bottom, 1] - lm[:, top, 1]) >= 2
        assert thick.float().mean() > 0.5
        assert (mid(top, bottom)[thick] == C[lip]).float().mean() > 0.95
    mouth = torch.stack([at(k) for k in range(48, 68)], 1)
    assert torch.isin(mouth, torch.tensor([C["u_lip"], C["l_lip"], C["mouth"], C["skin"]])).float().mean() > 0.95
    brows = torch.stack([at(k) for k in (18, 19, 20, 23, 24, 25)], 1)  # brow points between the two ends
    assert torch.isin(brows, torch.tensor([C["l_brow"], C["r_brow"], C["hair"], C["eye_g"]])).float().mean() > 0.9


def test_paired_render_reproduces_the_sample_and_changes_only_the_face(faces128):
    ds, b = faces128
    idx = torch.arange(0, 96, 8)
    same = ds.render_targets(idx)
    assert torch.equal(same["image"], b["image"][idx])
    src = b["expression"][idx]
    target = (src + 4) % 8
    edit = ds.render_targets(idx, expression=target)
    assert torch.equal(edit["expression"], target)
    changed = (edit["image"] - b["image"][idx]).abs().amax(1) > 0.05  # (n, H, W)
    assert changed.flatten(1).any(1).all()
    background = b["mask"][idx] == C["background"]
    assert changed[background].float().mean() < 0.01
    assert torch.equal(edit["attributes"][:, A["Male"]], b["attributes"][idx, A["Male"]])


def test_attribute_flips_are_rendered():
    ids = torch.arange(6)
    own = identity_attributes(ids)
    for name, cls in (("Eyeglasses", "eye_g"), ("Bald", "hair")):
        flip = own.clone()
        flip[:, A[name]] = 1 - flip[:, A[name]]
        out = render(ids, attributes=flip, size=64)
        present = (out["mask"] == C[cls]).flatten(1).any(1)
        want = out["attributes"][:, A[name]] > 0
        assert torch.equal(present, want if name == "Eyeglasses" else ~want)
    pale = own.clone()
    pale[:, A["Pale_Skin"]] = 1
    dark = own.clone()
    dark[:, A["Pale_Skin"]] = 0
    lp, ld = render(ids, attributes=pale, size=64), render(ids, attributes=dark, size=64)
    skin = lambda o: (o["image"].mean(1) * (o["mask"] == C["skin"])).flatten(1).sum(1) / (o["mask"] == C["skin"]).flatten(1).sum(1)  # noqa: E731
    assert (skin(lp) > skin(ld) + 0.1).all()
    # a target mouth attribute opens or closes the lips
    shut = render(ids, expression="surprised", attributes=own, size=64)
    assert (shut["attributes"][:, A["Mouth_Slightly_Open"]] == 0).all()
    opened = own.clone()
    opened[:, A["Mouth_Slightly_Open"]] = 1
    assert (render(ids, attributes=opened, size=64)["attributes"][:, A["Mouth_Slightly_Open"]] == 1).all()


def test_action_units_move_the_landmarks():
    aus = torch.zeros(3, 17)
    aus[:, L.AUS.index("AU26")] = torch.tensor([0.0, 0.5, 1.0])
    lm = render(5, aus=aus, size=128)["landmarks"]
    opening = lm[:, 66, 1] - lm[:, 62, 1]
    assert opening[0] < opening[1] < opening[2]
    brows = torch.zeros(2, 17)
    brows[1, L.AUS.index("AU01")] = 1
    lm = render(5, aus=brows, size=128)["landmarks"]
    assert (lm[1, [21, 22], 1] < lm[0, [21, 22], 1] - 2).all()  # inner brows go up by pixels
    # contempt is one-sided, a smile is not
    lm = render(5, expression=["contemptuous", "happy"], size=128)["landmarks"]
    assert abs(lm[0, 48, 1] - lm[0, 54, 1]) > 2 and abs(lm[1, 48, 1] - lm[1, 54, 1]) < 0.5


def test_random_aus_flat_style_and_lighting():
    ds = SynthFaces("train", size=64, n=32, au_mode="random")
    assert (ds.params["expression"] == L.NO_EXPRESSION).all()
    photo = render(range(8), size=64)
    flat = render(range(8), size=64, style="flat")
    def skin_roughness(out):  # mean step between horizontal neighbours that are both skin
        skin = out["mask"] == C["skin"]
        both = skin[..., 1:] & skin[..., :-1]
        return (out["image"][..., 1:] - out["image"][..., :-1]).abs().mean(1)[both].mean()

    assert skin_roughness(flat) < 0.5 * skin_roughness(photo)
    assert torch.equal(flat["mask"], photo["mask"])
    dark = render(range(8), size=64, lighting="dark")
    assert dark["image"].mean() < photo["image"].mean() - 0.2


def test_a_dataloader_batches_samples():
    loader = DataLoader(SynthFaces("val", size=32, n=10), batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 32, 32)
    assert len(batch["style"]) == 4 and batch["landmarks"].shape == (4, 68, 2)


def test_studio_background_is_one_colour_for_everybody_and_changes_nothing_else():
    own = SynthFaces("train", size=32, n=16, n_identities=16, seed=1)
    studio = SynthFaces("train", size=32, n=16, n_identities=16, seed=1, background="studio")
    a, b = own.batch(torch.arange(16)), studio.batch(torch.arange(16))
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["aus"], b["aus"])
    assert (b["mask"][:, 0, 0] == C["background"]).all()  # the top-left pixel is backdrop in every face

    def hue(batch):  # chromaticity of the top-left pixel: the backdrop's colour whatever the light's strength
        rgb = (batch["image"][:, :, 0, 0] + 1) / 2
        return rgb / rgb.sum(1, keepdim=True)

    assert hue(a).std(0).min() > 0.05  # per-person backdrops differ in colour
    assert hue(b).std(0).max() < 0.01  # the studio's does not
    face = b["mask"] != C["background"]
    assert (a["image"] - b["image"]).abs().amax(1)[face].mean() < 0.02  # the faces are the same
    gt = studio.render_targets(torch.arange(4), expression=torch.full((4,), 3))
    assert torch.allclose(gt["image"][:, :, 0, 0], b["image"][:4, :, 0, 0])  # an edit's ground truth: same studio
    with pytest.raises(ValueError, match="background"):
        SynthFaces(background="green")
