"""faceedit_nb.wild: detection, alignment, paste-back and every failure message, on skimage's bundled photos."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from faceedit_nb import wild
from faceedit_nb.metrics.editors import identity_editor

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::faceedit_nb.wild.WildNote")]
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def _quiet(fn, *args, **kwargs):
    """Run fn with WildNote warnings recorded; returns (result, [note texts])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, wild.WildNote)]


def _identity(size: int) -> wild.Editor:
    return wild.Editor("identity", "expression", size, identity_editor)


def test_astronaut_has_one_face_with_plausible_landmarks(astronaut):
    faces, notes = _quiet(wild.detect_faces, astronaut)
    assert len(faces) == 1
    assert any("dropped 1 detection(s) scoring 0.12" in n for n in notes)  # dlib's weak second box, named
    f = faces[0]
    x0, y0, x1, y1 = f.box
    assert f.landmarks.shape == (68, 2) and f.keypoints.shape == (5, 2)
    m = 0.15 * (x1 - x0)  # the jaw line may leave dlib's box a little
    assert ((f.landmarks > [x0 - m, y0 - m]) & (f.landmarks < [x1 + m, y1 + m])).all()
    assert ((f.keypoints[:, 1] > y0) & (f.keypoints[:, 1] < y1)).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = f.keypoints
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert 30 < f.eye_distance < 60


def test_mtcnn_finds_the_same_face_or_names_its_install(astronaut, monkeypatch):
    try:
        import facenet_pytorch  # noqa: F401
    except ImportError:
        pass
    else:
        dlib_face = wild.detect_faces(astronaut, min_score=0.5, notes=[])[0]
        faces = wild.detect_faces(astronaut, detector="mtcnn")
        assert len(faces) == 1 and faces[0].landmarks is None
        assert np.abs(faces[0].keypoints - dlib_face.keypoints).max() < 6
    wild._mtcnn.cache_clear()
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps facenet-pytorch==2\.6\.0"):
        wild.detect_faces(astronaut, detector="mtcnn")
    wild._mtcnn.cache_clear()


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 0.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = wild.umeyama(src, scale * src @ rot.T + shift)
    np.testing.assert_allclose(m[:2, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], shift, atol=1e-9)


def test_synthfaces_template_fits_held_out_synthfaces_faces():
    from faceedit_nb.data.synthfaces import SynthFaces
    t = wild.synthfaces_template()
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = t.points
    assert lx < 0.5 < rx and abs((lx + rx) / 2 - 0.5) < 0.02 and max(ly, ry) < ny < min(mly, mry)
    faces = SynthFaces("test", size=64, n=32, n_identities=8).batch(torch.arange(32))
    for lm in faces["landmarks"].numpy()[:8]:
        k = wild.keypoints_from_landmarks(lm)
        a = wild.align(wild.Face((0, 0, 64, 64), 1.0, k), t, 64)
        moved = (a.matrix @ np.c_[k, np.ones(5)].T)[:2].T
        assert np.abs(moved - t.pixels(64)).max() < 3.0  # a rendered face lands on the template within 3 px


def test_alignment_round_trip_returns_the_crop_region(astronaut):
    face = wild.detect_faces(astronaut, notes=[])[0]
    t = wild.synthfaces_template()
    # a linear ramp: bilinear sampling is exact on it, so the round trip must be too
    h, w = astronaut.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ramp = np.stack([xx, yy, (xx + yy) / 2], -1).astype(np.float32)
    for size, photo, tol in ((64, ramp, 1e-3), (256, astronaut.astype(np.float32) / 255, 0.03)):
        a = wild.align(face, t, size)
        block, (x0, y0, x1, y1) = a.to_photo(np.concatenate([a.to_crop(photo), wild.face_mask(t, size)[..., None]],
                                                            2), photo.shape)
        inside = block[..., 3] > 0.999
        assert inside.sum() > 500
        err = np.abs(block[..., :3] - photo[y0:y1, x0:x1])[inside]
        assert err.mean() < tol, (size, err.mean())


def test_paste_back_changes_only_the_masked_pixels(astronaut):
    face = wild.detect_faces(astronaut, notes=[])[0]
    t = wild.synthfaces_template()
    a = wild.align(face, t, 64)
    mask = wild.face_mask(t, 64)
    assert mask.max() == 1.0 and mask[0, 0] == 0.0
    noise = np.random.default_rng(0).uniform(0, 1, (64, 64, 3))
    weight, (x0, y0, x1, y1) = a.to_photo(mask, astronaut.shape)
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = weight <= 0
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 77, np.uint8)], 2)
    gray = astronaut.mean(2) / 255.0
    for photo in (astronaut, rgba, gray):
        out = wild.paste_back(photo, noise, a, mask)
        assert out.shape == photo.shape and out.dtype == photo.dtype
        assert np.array_equal(out[outside], photo[outside])
        assert (out != photo).any()
    assert (wild.paste_back(rgba, noise, a, mask)[..., 3] == 77).all()


def test_identity_editor_gives_back_the_photo(astronaut):
    result = wild.edit_photo(astronaut, _identity(256), "happy", source=[5])
    assert result.output.shape == astronaut.shape and result.output.dtype == np.uint8
    assert result.source_from == "given by the caller"
    diff = np.abs(result.output.astype(int) - astronaut.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff[diff.any(-1)], 99) < 40


def test_lfw_face_needs_and_takes_upscale():
    with pytest.raises(wild.FaceTooSmallError, match=r"the photo is 25 x 25 px: too small .* pass upscale=True"):
        wild.edit_photo("lfw:0", _identity(64), "happy", source=[5])
    result, notes = _quiet(wild.edit_photo, "lfw:0", _identity(64), "happy", source=[5], upscale=True)
    assert result.output.shape == (25, 25) and result.output.dtype == np.float64
    assert any(n.startswith("the photo is grayscale (25 x 25): edited as RGB") for n in notes)
    assert any(n.startswith("upscale: the 25 x 25 photo is enlarged 4x for detection") for n in notes)
    assert np.abs(result.output - result.photo).mean() < 0.05


def test_small_face_in_a_large_enough_photo(astronaut):
    half = astronaut[::2, ::2]  # eyes ~22 px apart; a 256 px crop wants 48: a 2.2x enlargement
    with pytest.raises(wild.FaceTooSmallError, match=r"face 0 is small: its eyes are .*\(more than max_zoom=2\.0.*"
                                                     r"pass upscale=True"):
        wild.edit_photo(half, _identity(256), "happy", source=[5])
    result, notes = _quiet(wild.edit_photo, half, _identity(256), "happy", source=[5], upscale=True)
    assert any("edited because upscale= was given" in n for n in notes)


def test_no_face_is_a_clear_error():
    with pytest.raises(wild.NoFaceError, match=r"no face found in the 200 x 160 photo by the dlib detector\. Fix: "):
        wild.edit_photo(np.full((160, 200, 3), 128, np.uint8), _identity(64), "happy", source=[5])


def test_several_faces_edit_one_by_index_or_all(astronaut):
    pair = np.concatenate([astronaut[40:240, 100:340], astronaut[40:240, 100:340]], 1)
    with pytest.raises(wild.SeveralFacesError, match=r"found 2 faces \(left to right: 0: x .*face=<index> \(0 to 1\).*"
                                                     r"face='all'"):
        wild.edit_photo(pair, _identity(64), "happy", source=[5])
    with pytest.raises(wild.WildError, match=r"face=2, but 2 face\(s\) were found"):
        wild.edit_photo(pair, _identity(64), "happy", source=[5], face=2)
    one = wild.edit_photo(pair, _identity(64), "happy", source=[5], face=1)
    assert one.faces[0].box[0] > 240 and np.array_equal(one.output[:, :200], pair[:, :200])
    both = wild.edit_photo(pair, _identity(64), "happy", source=[5, 5], face="all")
    assert len(both.faces) == 2 and len(both.edited) == 2


def test_photo_formats(astronaut):
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], 2)
    result, notes = _quiet(wild.edit_photo, rgba, _identity(64), "happy", source=[5])
    assert result.output.shape == rgba.shape and "the photo is RGBA" in notes[0]
    with pytest.raises(wild.PhotoFormatError, match=r"uint8 \(0-255\) or float \(0-1\); got dtype uint16"):
        wild.prepare_photo(astronaut.astype(np.uint16))
    with pytest.raises(wild.PhotoFormatError, match=r"values in \[0, 1\]; got \[0, 255\]"):
        wild.prepare_photo(astronaut.astype(np.float32))
    with pytest.raises(wild.PhotoFormatError, match=r"got shape \(4, 5, 6\)"):
        wild.prepare_photo(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(wild.WildError, match=r"neither a built-in name"):
        wild.load_photo("no/such/photo.jpg")


def test_large_photo_is_downscaled_for_detection_only(astronaut):
    full = wild.detect_faces(astronaut, notes=[])[0]
    faces, notes = _quiet(wild.detect_faces, astronaut, max_side=256)
    assert any("larger than max_side=256: faces are detected on a copy downscaled to 256 x 256" in n for n in notes)
    assert np.abs(faces[0].keypoints - full.keypoints).max() < 6  # mapped back to full-resolution pixels
    result, _ = _quiet(wild.edit_photo, astronaut, _identity(64), "happy", source=[5], max_side=256)
    assert result.output.shape == astronaut.shape


def test_targets_and_editor_names():
    src = torch.zeros(2, 17)
    assert wild.make_target("expression", "happy", torch.zeros(2)).tolist() == [4, 4]
    assert torch.equal(wild.make_target("aus", "happy", src)[0], wild.L.PROTOTYPES[4])
    assert wild.make_target("aus", {"AU12": 0.8}, src)[:, 8].tolist() == pytest.approx([0.8, 0.8])
    with pytest.raises(wild.WildError, match=r"target 'joyful': choose an expression of"):
        wild.make_target("expression", "joyful", torch.zeros(1))
    with pytest.raises(wild.WildError, match=r"target names \['AU99'\] unknown"):
        wild.make_target("aus", {"AU99": 1}, src)
    with pytest.raises(wild.WildError, match=r"unknown editor 'StarGun'; choose one of"):
        wild.load_editor("StarGun")


def test_celeba_template_reads_the_annotation_file(tmp_path):
    with pytest.raises(wild.WildError, match=r"no list_landmarks_align_celeba\.txt under"):
        wild.celeba_template(tmp_path)
    (tmp_path / "Anno").mkdir()
    (tmp_path / "Anno" / "list_landmarks_align_celeba.txt").write_text(
        "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        "000001.jpg 69 109 106 113 77 142 73 152 108 154\n000002.jpg 69 110 107 112 81 135 70 151 108 153\n")
    t = wild.celeba_template(tmp_path, crop=178)
    # x: (69 - 0 + 0.5) / 178; y: (109.5 - 20 + 0.5) / 178 (the 178 px square starts 20 rows down)
    assert t.points[0] == pytest.approx(((69 + 0.5) / 178, (109.5 - 20 + 0.5) / 178), abs=1e-5)
    assert "2 rows" in t.source


def test_a_trained_smoke_stargan_edits_the_astronaut(astronaut):
    editor = wild.load_editor("StarGAN", profile="smoke")
    result, _ = _quiet(wild.edit_photo, astronaut, editor, "happy")
    assert result.source_from.startswith("read from the aligned crop by the smoke expression oracle")
    assert result.crops.shape == (1, 3, editor.image_size, editor.image_size)
    assert result.output.shape == astronaut.shape and (result.output != astronaut).any()
    assert result.target.tolist() == [wild.L.EXPRESSIONS.index("happy")]


def test_a_landmark_editor_gets_the_photos_68_landmarks_in_the_crop(astronaut):
    got = {}

    def recording(images, source, target, landmarks):
        got["landmarks"] = landmarks
        return images

    editor = wild.Editor("side", "expression", 64, recording, wants_landmarks=True)
    result, _ = _quiet(wild.edit_photo, astronaut, editor, "happy", source=torch.zeros(1, dtype=torch.long))
    lm = got["landmarks"]
    assert lm.shape == (1, 68, 2)
    # the five keypoints of the mapped landmarks sit where the alignment put the photo's keypoints
    mapped = wild.keypoints_from_landmarks(lm[0].numpy())
    assert np.abs(mapped - result.alignments[0].points_to_crop(result.faces[0].keypoints)).max() < 1e-4
    assert np.abs(mapped - result.template.pixels(64)).max() < 4  # and those near the training crop's (px)
    assert ((lm >= 0) & (lm < 64)).all()
    with pytest.raises(wild.WildError, match="68 landmarks"):
        editor(result.crops, result.source, result.target)


@pytest.mark.parametrize("name", ["Bodur et al.", "SeCGAN (StarGAN)", "SeCGAN (AttGAN)", "LSSL"])
def test_each_papers_method_edits_the_astronaut_by_name(astronaut, name):
    editor = wild.load_editor(name, profile="smoke")
    assert editor.wants_landmarks == (name == "LSSL")
    target = {"Eyeglasses": 1.0} if editor.kind == "attributes" else "happy"
    result, _ = _quiet(wild.edit_photo, astronaut, editor, target)
    assert result.edited.shape == (1, 3, editor.image_size, editor.image_size)
    assert torch.isfinite(result.edited).all() and not torch.equal(result.edited, result.crops)
    assert result.output.shape == astronaut.shape and (result.output != astronaut).any()


def test_transfer_gap_feeds_a_landmark_editor_on_photos_and_synthfaces(astronaut):
    editor = wild.load_editor("LSSL", profile="smoke")
    result, _ = _quiet(wild.edit_photo, astronaut, editor, "happy")
    assert result.landmarks.shape == (1, 68, 2)
    gap = wild.transfer_gap(editor, [result], wild.editor_oracles(editor), n_synth=8, targets=["happy", "sad"])
    assert gap["photos"]["n"] == 2 and gap["SynthFaces"]["n"] == 16
    assert wild.transfer_verdict(editor, gap) == ("worse" if gap["photos"]["hit"] < gap["SynthFaces"]["hit"]
                                                  else "no worse")
