"""The metrics, pinned to values known by construction, and the evaluation harness on SynthFaces."""
from __future__ import annotations

import math

import pytest
import torch

from faceedit_nb import labels as L
from faceedit_nb.data import SynthFaces
from faceedit_nb.metrics import (FeatureNet, attribute_editing_accuracy, average_content_distance, confusion_matrix,
                                 expression_distance, expression_editing_accuracy, expression_preservation_error,
                                 fid, flip_attribute, frechet_distance, id_distance, inception_score,
                                 inception_score_from_logits, iou_per_class, kernel_distance, l1_error, load_inception,
                                 load_swav, mean_iou, psnr, ssim, stargan_targets)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small networks run fastest on one thread, and `make test` runs two pytest workers on two cores
    (two threads each would oversubscribe them); restored afterwards for the worker's next test file."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces():
    """64 SynthFaces test images at 32 px (8 identities x 8 expressions) and their labels."""
    ds = SynthFaces("test", size=32, n=64, n_identities=8)
    return ds, ds.batch(torch.arange(64))


# --- FID / KID / IS ---------------------------------------------------------------------------------

def test_fid_of_gaussian_features_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g, dtype=torch.float64)
    assert abs(frechet_distance(x, x)) < 1e-6
    # a mean shift c adds |c|^2 and nothing else; scaling by 2 adds Tr(S) (Tr(S + 4S - 2 * 2S))
    assert frechet_distance(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)
    cov = torch.cov(x.T)
    assert frechet_distance(x, 2 * x) == pytest.approx(float(cov.trace() + (x.mean(0) ** 2).sum()), rel=1e-5)


def test_fid_and_kid_on_images_through_a_small_network(faces):
    _, b = faces
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten())
    net = FeatureNet(conv, 16)
    x = b["image"]
    darker = (x - 0.4).clamp(-1, 1)
    same, shifted = fid(x, x, net), fid(x, darker, net)
    assert abs(same) < 1e-5 < 0.01 < shifted
    f, f_dark = net(x).detach(), net(darker).detach()
    k_same, _ = kernel_distance(f, f, subsets=20, subset_size=32)
    k_shift, _ = kernel_distance(f, f_dark, subsets=20, subset_size=32)
    assert abs(k_same) < 0.1 * k_shift and k_shift > 0
    assert kernel_distance(f, f_dark, subsets=20, subset_size=32, seed=3) == \
        kernel_distance(f, f_dark, subsets=20, subset_size=32, seed=3)


def test_inception_score_bounds():
    n, c = 8000, 8  # 800 per split: a random split is balanced to within a few percent
    assert inception_score_from_logits(torch.zeros(n, c))[0] == pytest.approx(1.0, abs=1e-6)  # uniform predictions
    same_class = torch.zeros(n, c)
    same_class[:, 3] = 50
    assert inception_score_from_logits(same_class)[0] == pytest.approx(1.0, abs=1e-6)  # confident, one class
    confident = torch.zeros(n, c)
    confident[torch.arange(n), torch.arange(n) % c] = 50  # confident and balanced
    mean, std = inception_score_from_logits(confident, splits=10)
    assert c - 0.1 < mean <= c + 1e-4 and std < 0.1
    # through the image API with a classifier that reads the class off a known pixel
    images = torch.full((400, 3, 4, 4), -1.0)
    images[torch.arange(400), 0, 0, 0] = (torch.arange(400) % 4).float() / 4

    def classifier(x):
        return 50 * torch.nn.functional.one_hot((x[:, 0, 0, 0] * 4).round().long(), 4).float()
    assert inception_score(images, classifier, splits=2)[0] == pytest.approx(4.0, rel=0.02)


# --- pixel metrics and mIoU -------------------------------------------------------------------------

def test_ssim_matches_torchmetrics(faces):
    """Our SSIM (two 1-D passes as banded matrix products) is torchmetrics' 11 x 11 Gaussian SSIM to float
    rounding, on faces, on noisy faces and on non-square random images."""
    from torchmetrics.functional.image import structural_similarity_index_measure as reference
    _, b = faces
    x = b["image"][:6]
    g = torch.Generator().manual_seed(1)
    pairs = [(x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)), (x, x.flip(-1)),
             (torch.rand(3, 3, 24, 40, generator=g) * 2 - 1, torch.rand(3, 3, 24, 40, generator=g) * 2 - 1)]
    for p, t in pairs:
        expected = reference((p.double() + 1) / 2, (t.double() + 1) / 2, data_range=1.0, reduction="none")
        assert ssim(p, t).double() == pytest.approx(expected, abs=5e-5)
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(torch.zeros(1, 3, 10, 64), torch.zeros(1, 3, 10, 64))


def test_psnr_l1_ssim_known_values(faces):
    _, b = faces
    x = b["image"][:4]
    assert torch.all(ssim(x, x) > 1 - 1e-5)
    assert torch.isinf(psnr(x, x)).all() and l1_error(x, x).abs().max() == 0
    a = torch.full((2, 3, 16, 16), -0.5)  # 0.25 on the [0, 1] scale
    b2 = a + 0.2  # +0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB, L1 0.1
    assert psnr(b2, a) == pytest.approx(torch.full((2,), 20.0), abs=1e-4)
    assert l1_error(b2, a) == pytest.approx(torch.full((2,), 0.1), abs=1e-6)
    # two constant images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = (0.01)^2
    c1, mx, my = 1e-4, 0.25, 0.35
    assert ssim(b2, a) == pytest.approx(torch.full((2,), (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)), abs=1e-5)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert torch.all(ssim(noisy, x) < 0.9)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:, :, :8])


def test_miou_ground_truth_and_hand_computed_confusion(faces):
    _, b = faces
    mask = b["mask"]
    miou, per_class = mean_iou(mask, mask, len(L.PARSING_CLASSES))
    assert miou == 1.0
    absent = torch.bincount(mask.flatten(), minlength=19) == 0
    assert torch.isnan(per_class[absent]).all() and (per_class[~absent] == 1).all()
    # 2 x 3 maps, 3 classes: gt [[0,0,1],[1,2,2]], pred [[0,1,1],[1,2,0]]
    gt = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    cm = confusion_matrix(pred, gt, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = iou_per_class(cm)  # class 0: 1/(2+2-1)=1/3; class 1: 2/(2+3-2)=2/3; class 2: 1/(2+1-1)=1/2
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(pred, gt, 3)[0] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # a class predicted but absent from the ground truth does not enter the mean; logits are arg-maxed
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 3]]]), 4).permute(0, 3, 1, 2).float()
    miou, iou = mean_iou(logits, torch.tensor([[[0, 0]]]), 4)
    assert miou == pytest.approx(0.5) and torch.isnan(iou[3])
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(pred, gt + 1, 3)


# --- identity and expression distances ----------------------------------------------------------------

def test_id_distance_small_for_the_same_faces_large_for_permuted_identities(faces):
    _, b = faces
    torch.manual_seed(0)
    proj = torch.randn(3 * 32 * 32, 64)

    def embed(x):  # a fixed random projection of the pixels, L2-normalised (a tiny real embedding)
        return torch.nn.functional.normalize((x.flatten(1) - x.flatten(1).mean(0)) @ proj, dim=1)

    x = b["image"]
    e = embed(x)
    assert id_distance(e, e).abs().max() < 1e-5
    perm = torch.roll(torch.arange(len(x)), 1)  # every face paired with another person's
    d_perm = id_distance(embed(x[perm]), e)
    assert d_perm.mean() > 0.3
    assert torch.allclose(average_content_distance(embed(x[perm]), e), (2 * d_perm).sqrt(), atol=1e-4)
    aus = b["aus"]
    assert expression_distance(aus, aus).max() == 0
    assert expression_distance(aus[perm], aus) == pytest.approx((aus[perm] - aus).norm(dim=1))


# --- classifier metrics -----------------------------------------------------------------------------

def test_eea_preservation_and_attribute_accuracy_bookkeeping():
    # a classifier that reads the class off pixel (0, 0): logits = 10 * one_hot(pixel)
    source = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    target = torch.tensor([1, 1, 3, 3, 2, 2, 0, 0])
    shown = torch.tensor([1, 1, 2, 3, 0, 2, 0, 3])  # what the "edited" images show
    logits = 10.0 * torch.nn.functional.one_hot(shown, 4)
    eea = expression_editing_accuracy(logits, target)
    assert eea.count.tolist() == [2, 2, 2, 2]
    # target 0: shows 0 (ok), 3; target 1: 1, 1 (both ok); target 2: 0, 2 (ok); target 3: 2, 3 (ok)
    assert eea.per_class.tolist() == [0.5, 1.0, 0.5, 0.5]
    assert eea.mean == eea.pooled == 0.625 and eea.n == 8
    pres = expression_preservation_error(logits, source, target)
    # edits with source != target: (0->1 ok), (2->3 shows 2: preserved), (0->2 shows 0: preserved),
    # (1->2 ok), (2->0 ok), (3->0 shows 3: preserved)
    assert pres.count.tolist() == [2, 1, 2, 1]
    assert pres.per_class.tolist() == [0.5, 0.0, 0.5, 1.0]
    # attributes: correct when the edited attribute's prediction equals its target
    target_a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pred_a = torch.tensor([[3.0, 3.0], [2.0, -1.0], [-1.0, 5.0]])
    acc = attribute_editing_accuracy(pred_a, target_a, torch.tensor([0, 1, 1]))
    assert acc.per_class.tolist() == [1.0, 0.5] and acc.count.tolist() == [1, 2] and acc.mean == 0.75
    assert acc.pooled == pytest.approx(2 / 3)


def test_attgan_and_stargan_targets():
    a = torch.zeros(3, len(L.ATTRIBUTES))
    col = {n: i for i, n in enumerate(L.ATTRIBUTES)}
    a[0, col["Black_Hair"]] = 1
    a[1, col["Bangs"]] = 1
    a[2, col["Male"]] = a[2, col["No_Beard"]] = 1
    t = flip_attribute(a, col["Blond_Hair"])
    assert t[0, col["Blond_Hair"]] == 1 and t[0, col["Black_Hair"]] == 0  # a colour set clears the others
    t = flip_attribute(a, col["Bald"])
    assert t[1, col["Bald"]] == 1 and t[1, col["Bangs"]] == 0
    t = flip_attribute(a, col["Mustache"])
    assert t[2, col["Mustache"]] == 1 and t[2, col["No_Beard"]] == 0
    t = flip_attribute(a, col["Black_Hair"])
    assert t[0, col["Black_Hair"]] == 0 and (t[0] == a[0] - torch.eye(13)[col["Black_Hair"]]).all()
    c = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]])  # black hair, male, old
    assert stargan_targets(c, 1).tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    assert stargan_targets(c, 3).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    assert stargan_targets(c, 4).tolist() == [[1.0, 0.0, 0.0, 1.0, 1.0]]


# --- ImageNet networks from local files ---------------------------------------------------------------

def test_inception_and_swav_load_from_local_files_only(tmp_path):
    from torchvision.models import inception_v3, resnet18, resnet50
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_inception(tmp_path / "missing.pth")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    # pytorch-fid's layout (1008 classes, no aux head) and torchvision's (1000 classes, aux head)
    from faceedit_nb.metrics.pretrained import _inception
    fid_sd = _inception(1008, aux_logits=False, fid_blocks=True).state_dict()
    torch.save(fid_sd, tmp_path / "pt_inception.pth")
    net = load_inception(tmp_path / "pt_inception.pth")
    features = net(x)
    assert net.flavour == "pytorch-fid" and features.shape == (1, 2048) and net.net.fc(features).shape == (1, 1008)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tmp_path / "tv.pth")
    net = load_inception(tmp_path / "tv.pth")
    assert net.flavour == "torchvision" and net.num_classes == 1000
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="Inception-v3 classifier"):
        load_inception(tmp_path / "r18.pth")
    bad = dict(fid_sd)
    bad.pop("Mixed_7c.branch_pool.conv.weight")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="1 missing keys"):
        load_inception(tmp_path / "bad.pth")
    # SwAV's checkpoint: DataParallel prefixes, a projection head and prototypes beside the trunk
    sd = {f"module.{k}": v for k, v in resnet50().state_dict().items() if not k.startswith("fc.")}
    sd["module.projection_head.0.weight"] = torch.zeros(2048, 2048)
    sd["module.prototypes.weight"] = torch.zeros(3000, 128)
    torch.save(sd, tmp_path / "swav.pth.tar")
    swav = load_swav(tmp_path / "swav.pth.tar")
    assert swav(x).shape == (1, 2048)
    with pytest.raises(ValueError, match="missing keys"):
        load_swav(tmp_path / "r18.pth")


# --- the harness ----------------------------------------------------------------------------------
# The harness is checked with small, randomly initialised real networks in the oracles' interface: every
# assertion below is an identity that holds for any classifier (the editor's accuracy equals what the
# same network says about the inputs, an exact edit has zero error...), computed independently here.

def _trunk(c_out: int) -> torch.nn.Sequential:
    """conv-BN-ReLU-pool x 3 then global pooling: a small real CNN (random weights)."""
    layers, c = [], 3
    for w in (8, 16, c_out):
        layers += [torch.nn.Conv2d(c, w, 3, padding=1), torch.nn.BatchNorm2d(w), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        c = w
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


class _Classifier(torch.nn.Module):
    """The layout the harness reads penultimate features from: ``.features`` then ``.classifier``."""

    def __init__(self, n_out: int):
        super().__init__()
        self.features = _trunk(16)
        self.classifier = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, n_out))

    def forward(self, x):
        return self.classifier(self.features(x))


class TinyOracles:
    """Five small real networks (random weights, eval mode) with the interface of faceedit_nb.oracles.Oracles."""

    def __init__(self, size: int):
        torch.manual_seed(0)
        self.size = size
        self.nets = {"expression": _Classifier(8).eval()}  # the harness takes penultimate features from it
        self.attributes = _Classifier(13).eval()
        self.au = torch.nn.Sequential(_Classifier(17), torch.nn.Sigmoid()).eval()
        self.identity = _trunk(16).eval()
        self.parser = torch.nn.Conv2d(3, 19, 3, padding=1).eval()

    def expression_logits(self, x):
        return self.nets["expression"](x)

    def attribute_logits(self, x):
        return self.attributes(x)

    def aus(self, x):
        return self.au(x)

    def identity_embedding(self, x):
        return torch.nn.functional.normalize(self.identity(x), dim=1)

    def parse(self, x):
        return self.parser(x)


@pytest.fixture(scope="module")
def tiny():
    return TinyOracles(32)


def test_identity_editor_scores_what_the_inputs_already_show(faces, tiny):
    from faceedit_nb.metrics import evaluate, identity_editor
    ds, b = faces
    tab = evaluate(identity_editor, ds, tiny, protocol="expression", batch_size=24, kid_subsets=5, amp=False)
    with torch.no_grad():
        shown = tiny.expression_logits(b["image"]).argmax(1)  # fp32, as the harness with amp=False
    for t, name in enumerate(L.EXPRESSIONS):
        assert tab.n("eea", name) == 64
        assert tab.value("eea", name) == pytest.approx(float((shown == t).float().mean()), abs=1e-6)
        assert tab.value("fid_own", name) == pytest.approx(0.0, abs=1e-6)  # the edits are the real images
        assert tab.value("id_distance", name) == pytest.approx(0.0, abs=1e-6)
    assert tab.value("eea") == pytest.approx(1 / 8) and tab.n("eea") == 8 * 64
    assert tab.value("eea", "real images") == pytest.approx(float((shown == b["expression"]).float().mean()), abs=1e-6)
    # edit error: zero for the edits to the image's own expression, the true expression change otherwise
    own = tab.value("gt_l1", "overall") * 8 * 64
    changes = sum(l1_error(b["image"], ds.render_targets(torch.arange(64), expression=torch.full((64,), t))["image"])
                  .sum() for t in range(8))
    assert own == pytest.approx(float(changes), rel=1e-4) and own > 0
    assert tab.meta["n_edits"] == 512 and not tab.meta["skipped"]
    md = tab.markdown(["eea", "gt_l1"])
    assert md.splitlines()[0] == "| class | n | EEA | GT L1 |" and "| overall | 512 |" in md


def test_ground_truth_editor_has_zero_edit_error(faces, tiny):
    from faceedit_nb.metrics import evaluate, ground_truth_editor
    ds, _ = faces
    tab = evaluate(ground_truth_editor(ds), ds, tiny, protocol="expression", include_source=False, batch_size=32,
                   kid_subsets=5, amp=False)  # fp32: bf16 kernels differ slightly with the batch size
    assert tab.value("gt_l1") == 0 and tab.value("gt_ssim") == pytest.approx(1.0) and math.isinf(tab.value("gt_psnr"))
    assert tab.n("eea") == 7 * 64 and tab.n("preservation_error") == 7 * 64  # own expression left out
    assert all(tab.n("eea", name) == 56 for name in L.EXPRESSIONS)  # 8 sources per expression skipped
    again = evaluate(ground_truth_editor(ds), ds, tiny, protocol="expression", include_source=False,
                     batch_size=16, kid_subsets=5, amp=False)  # other batches, same numbers
    for m in ("eea", "fid_own", "kid_own", "is_own", "id_distance", "gt_miou"):
        assert again.value(m) == pytest.approx(tab.value(m), rel=1e-4, abs=1e-6), m


@pytest.mark.parametrize("protocol", ["attributes", "stargan", "aus", "expression_aus"])
def test_other_protocols_targets_and_counts(faces, tiny, protocol):
    from faceedit_nb.metrics import PROTOCOLS, evaluate, ground_truth_editor
    ds, b = faces
    seen = []

    def recording_identity(images, source, target):
        seen.append((source.clone(), target.clone()))
        return images

    n = 64 if protocol == "expression_aus" else 32  # the first 32 images show only 4 expressions
    tab = evaluate(recording_identity, ds, tiny, protocol=protocol, n=n, batch_size=n, kid_subsets=5)
    src, trg = seen[0]
    if protocol == "attributes":
        assert len(seen) == 13 and tab.n("attribute_accuracy") == 13 * 32
        assert (trg[:, 0] != src[:, 0]).all()  # slot 0 flips Bald
        assert tab.value("gt_realised", "Mustache") < 1  # SynthFaces puts no moustache on a woman
    elif protocol == "stargan":
        assert len(seen) == 5 and src.shape == (32, 5) and (trg[:, 0] == 1).all() and (trg[:, 1:3] == 0).all()
    elif protocol == "aus":
        assert len(seen) == 7 and src.shape == trg.shape == (32, 17)
        assert not any(torch.equal(t_row, s_row) for s, t in seen for s_row, t_row in zip(s, t))  # never itself
        assert tab.n("ed") == 7 * 32 and tab.value("ed") > 0
    else:
        assert len(seen) == 8 and tab.n("eea") == 8 * 64 and not tab.meta["skipped"]
        assert all(tab.n("eea", name) == 64 for name in L.EXPRESSIONS)
        assert tab.meta["ed_reference"] == "target AUs"
    gt = evaluate(ground_truth_editor(ds), ds, tiny, protocol=protocol, n=n, batch_size=n, kid_subsets=5)
    assert gt.value("gt_l1") == 0
    assert set(tab.classes()) - {"overall", "real images"} <= set(PROTOCOLS[protocol].classes)


def test_harness_errors_are_clear(faces, tiny):
    from faceedit_nb.metrics import evaluate, identity_editor
    ds, _ = faces
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(identity_editor, ds, tiny, protocol="rafd")
    with pytest.raises(ValueError, match="input's shape"):
        evaluate(lambda x, s, t: x[:, :, :16], ds, tiny, n=8)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate(lambda x, s, t: x * float("nan"), ds, tiny, n=8)
    with pytest.raises(ValueError, match="n must lie in 1..64"):
        evaluate(identity_editor, ds, tiny, n=65)
    with pytest.raises(ValueError, match="oracles measure 32 x 32"):
        evaluate(identity_editor, SynthFaces("test", size=64, n=8), tiny)


class _Rescaled:
    """The ground-truth editor with its output mapped by ``f``: an exact edit on another scale."""

    wants_indices = True

    def __init__(self, ds, f, name: str):
        from faceedit_nb.metrics import ground_truth_editor
        self.gt, self.f, self.__name__ = ground_truth_editor(ds), f, name

    def __call__(self, images, source, target, *, indices):
        return self.f(self.gt(images, source, target, indices=indices))


@pytest.mark.parametrize("f, words", [
    (lambda y: (y + 1) * 127.5, ["returned values in [", "255]", "expects images in [-1, 1]", "[0, 255] images",
                                 "y / 127.5 - 1"]),
    (lambda y: ((y + 1) * 127.5).round().to(torch.uint8), ["[0, 255] images", "y / 127.5 - 1"]),
    (lambda y: (y + 1) / 2, ["never below 0", "input images reach -0.9", "images in [0, 1]",
                             "expects images in [-1, 1]", "y * 2 - 1"]),
])
def test_an_editor_on_another_scale_is_an_error(faces, tiny, f, words):
    """An exact edit returned in [0, 255] or [0, 1] was clamped to [-1, 1] without a word: a PSNR of 3 or 9 dB
    where the truth is inf. Now an error naming the observed range, the expected one and the fix."""
    from faceedit_nb.metrics import evaluate
    ds, _ = faces
    with pytest.raises(ValueError) as err:
        evaluate(_Rescaled(ds, f, "rescaled"), ds, tiny, n=32, batch_size=32, kid_subsets=5, amp=False)
    assert str(err.value).startswith("the editor rescaled returned values in [")
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_the_zero_one_test_raises_no_false_alarm(faces, tiny):
    """No error where [0, 1] cannot be told from a real edit: inputs that never go below 0 (an identity editor
    on bright faces), a collapsed editor that outputs one grey (a bad edit, not another scale), and an editor
    whose first edits are bright but a later one dark; the [0, 1] error also comes with fewer than 8 edits."""
    from faceedit_nb.metrics import evaluate, identity_editor
    ds, b = faces

    class Bright:  # the same faces with every pixel in [0, 1]
        def __len__(self):
            return len(ds)

        def batch(self, idx):
            return {"image": b["image"][idx].abs(), "expression": b["expression"][idx]}

    tab = evaluate(identity_editor, Bright(), tiny, n=16, batch_size=16, kid_subsets=5, amp=False)
    assert tab.meta["output_range"][0] >= 0 and tab.n("eea") == 8 * 16
    grey = evaluate(lambda x, s, t: torch.full_like(x, 0.3), ds, tiny, n=16, batch_size=16, kid_subsets=5, amp=False)
    assert grey.meta["output_range"] == pytest.approx((0.3, 0.3))
    calls = []

    def dark_later(x, s, t):  # the first 4-image call in [0, 1], the next ones as given
        calls.append(len(x))
        return (x + 1) / 2 if len(calls) == 1 else x

    evaluate(dark_later, ds, tiny, n=4, batch_size=4, kid_subsets=5, amp=False)
    assert calls[0] == 4 and len(calls) == 8
    with pytest.raises(ValueError, match=r"over its first 7 edits, never below 0.*y \* 2 - 1"):
        evaluate(lambda x, s, t: (x + 1) / 2, ds, tiny, n=1, batch_size=1, include_source=False, kid_subsets=5,
                 amp=False)


def test_an_overshoot_is_clamped_with_a_warning(faces, tiny):
    """Values a little beyond [-1, 1] (an unclamped residual generator) are clamped as before, but said."""
    from faceedit_nb.metrics import evaluate, identity_editor
    ds, _ = faces
    with pytest.warns(UserWarning, match=r"returned values in \[-1.1\d\d, 1.200\], beyond \[-1, 1\] on .*% of the "
                                         r"pixels.*clamp"):
        tab = evaluate(lambda x, s, t: x * 1.2, ds, tiny, n=16, batch_size=16, kid_subsets=5, amp=False)
    assert tab.meta["output_range"][1] == pytest.approx(1.2) and 0 < tab.meta["clamped_share"] < 1
    quiet = evaluate(identity_editor, ds, tiny, n=16, batch_size=16, kid_subsets=5, amp=False)
    assert quiet.meta["clamped_share"] == 0
