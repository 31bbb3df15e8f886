"""Local parts of the hierarchical GAN: masks, boxes, differentiable crops and stitching."""
import torch

from faceedit_nb import labels as L
from faceedit_nb.data import SynthFaces
from faceedit_nb.papers.seg_hierarchical import model as H
from faceedit_nb.nets.parsing import soft_part_masks


def _faces(n=6, size=64):
    return SynthFaces("val", size=size, n=n, n_identities=n).batch(torch.arange(n))


def test_part_masks_group_the_papers_classes():
    names = [[L.PARSING_CLASSES[i] for i in cls] for cls in H.PART_CLASSES]
    assert names == [["l_eye", "l_brow"], ["r_eye", "r_brow"], ["nose"], ["mouth", "u_lip", "l_lip"]]
    b = _faces()
    logits = 50.0 * torch.nn.functional.one_hot(b["mask"], 19).permute(0, 3, 1, 2).float()
    assert torch.allclose(soft_part_masks(logits, 1.0), H.hard_part_masks(b["mask"]), atol=1e-6)


def test_boxes_hold_every_part_pixel():
    b = _faces()
    masks = H.hard_part_masks(b["mask"])
    boxes, empty = H.mask_boxes(masks, margin=0.0)
    assert not empty.any()
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    inside = ((xs + 0.5 >= boxes[..., 0, None, None]) & (xs + 0.5 <= boxes[..., 2, None, None])
              & (ys + 0.5 >= boxes[..., 1, None, None]) & (ys + 0.5 <= boxes[..., 3, None, None]))
    assert inside[masks > 0].all()
    # a part that is not there is flagged, not silently given a wrong box
    masks[0, 3] = 0
    _, empty = H.mask_boxes(masks)
    assert empty[0, 3] and empty.sum() == 1


def test_extract_then_stitch_gives_back_the_masked_parts_and_passes_gradients():
    b = _faces()
    masks = H.hard_part_masks(b["mask"]).requires_grad_()
    boxes, _ = H.mask_boxes(masks, margin=0.2)
    crops = H.extract_parts(b["image"], boxes, out_size=64, masks=masks)
    assert crops.shape == (6, 4, 3, 64, 64)
    back = H.stitch_parts(crops, boxes, 64)
    want = (masks.unsqueeze(2) * b["image"].unsqueeze(1)).sum(1)
    assert (back - want).abs().mean() < 0.02
    back.sum().backward()
    assert masks.grad is not None and masks.grad.abs().sum() > 0


def test_rectangular_boxes_are_centred_on_landmarks_and_overlap():
    b = _faces(size=128)
    boxes = H.rectangular_boxes(b["landmarks"], (0.3, 0.3, 0.3, 0.4), 128)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2 - 0.5
    mouth = b["landmarks"][:, 48:68].mean(1)
    assert torch.allclose(centre[:, 3], mouth, atol=1e-4)
    assert torch.allclose(boxes[..., 2] - boxes[..., 0], torch.tensor([38.4, 38.4, 38.4, 51.2]).expand(6, 4))
    nose, eye = boxes[:, 2], boxes[:, 0]
    overlap_x = torch.minimum(nose[:, 2], eye[:, 2]) - torch.maximum(nose[:, 0], eye[:, 0])
    overlap_y = torch.minimum(nose[:, 3], eye[:, 3]) - torch.maximum(nose[:, 1], eye[:, 1])
    assert ((overlap_x > 0) & (overlap_y > 0)).all()  # the boxes the paper argues against overlap
    crops = H.extract_parts(b["image"], boxes, out_size=96)
    back = H.stitch_parts(crops, boxes, 128, average_overlaps=True)
    covered = back.abs().sum(1) > 0
    assert (back - b["image"]).abs().mean(1)[covered].mean() < 0.03


def test_fusion_network_blends_two_images():
    f = H.FusionNetwork(dim=16)
    x = torch.randn(2, 3, 32, 32)
    out = f(x, x)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
