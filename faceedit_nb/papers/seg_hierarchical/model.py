"""The networks of Bodur et al.'s hierarchical GAN (seg-hierarchical-gan.txt, Sec. 3, Fig. 2).

* :func:`hard_part_masks`: the 4 local parts (left eye + brow, right eye + brow, nose, mouth + lips) of a
  label map; a parser's soft masks (Eq. 1) come from :func:`faceedit_nb.nets.parsing.soft_part_masks`.
* :func:`extract_parts`: ``x_p = M_p * x`` (Eq. 2), each part cropped to its content and resized to the
  local generators' input size, differentiably (gradients reach the parser through ``M_p``).
* :func:`stitch_parts`: the translated parts placed back, centred at their original location, giving
  ``x_local`` (Sec. 3.2, "Fusion Network").
* :class:`FusionNetwork`: two convolution blocks, four residual blocks and a convolution (Eq. 4).
* :func:`rectangular_boxes`: the baseline the paper argues against (Cascade EF-GAN, APDrawing): fixed-size
  boxes centred on landmarks, overlapping, cropped from the unmasked image.
* :class:`HierarchicalGAN`: parser, global / local / fusion generators (Eq. 3-4) and their critics;
  :class:`HierarchicalEditor`: the evaluation harness's editor.

Boxes are ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, one per sample and part.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import labels as L
from ...nets import stargan
from .config import PARTS, HierarchicalConfig

__all__ = ["PARTS", "PART_CLASSES", "PART_LANDMARKS", "hard_part_masks", "mask_boxes", "rectangular_boxes",
           "extract_parts", "stitch_parts", "FusionNetwork", "build_parser", "HierarchicalGAN",
           "build_hierarchical", "HierarchicalEditor", "hierarchical_editor", "part_centre_landmarks"]

# For each part, the canonical (CelebAMask-HQ) classes it is made of.
PART_CLASSES = tuple(tuple(i for i in range(len(L.PARSING_CLASSES)) if int(L.TO_LOCAL_PARTS[i]) == p + 1)
                     for p in range(len(PARTS)))
# iBUG landmark groups of each part, for the rectangular baseline.
PART_LANDMARKS = (tuple(range(22, 27)) + tuple(range(42, 48)),  # subject's left brow + eye (image right)
                  tuple(range(17, 22)) + tuple(range(36, 42)),  # subject's right brow + eye (image left)
                  tuple(range(27, 36)), tuple(range(48, 68)))


def hard_part_masks(mask: torch.Tensor) -> torch.Tensor:
    """The 4 part masks (B, 4, H, W) of a ground-truth label map (B, H, W), as floats 0/1."""
    parts = L.map_mask(mask, "local_parts")
    return torch.stack([(parts == p + 1).float() for p in range(len(PARTS))], 1)


def mask_boxes(masks: torch.Tensor, margin: float = 0.15, min_size: int = 4, threshold: float = 0.5):
    """Tight boxes around each part mask (B, P, H, W), grown by ``margin`` of their size on each side.

    Returns ``(boxes (B, P, 4) float, empty (B, P) bool)``. A part with no pixel above ``threshold`` (an
    eye closed, a part the parser missed) gets a box of ``min_size`` pixels at the image centre and is
    flagged in ``empty`` so that callers can count it.
    """
    B, P, H, W = masks.shape
    on = masks.detach() > threshold
    rows, cols = on.any(3), on.any(2)  # (B, P, H), (B, P, W)
    ar_h, ar_w = torch.arange(H, device=masks.device), torch.arange(W, device=masks.device)
    y0 = torch.where(rows, ar_h, H).amin(-1).float()
    y1 = torch.where(rows, ar_h, -1).amax(-1).float() + 1
    x0 = torch.where(cols, ar_w, W).amin(-1).float()
    x1 = torch.where(cols, ar_w, -1).amax(-1).float() + 1
    empty = ~rows.any(-1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w = ((x1 - x0) * (1 + 2 * margin)).clamp(min=min_size)
    h = ((y1 - y0) * (1 + 2 * margin)).clamp(min=min_size)
    cx = torch.where(empty, torch.full_like(cx, W / 2), cx)
    cy = torch.where(empty, torch.full_like(cy, H / 2), cy)
    w = torch.where(empty, torch.full_like(w, min_size), w)
    h = torch.where(empty, torch.full_like(h, min_size), h)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1), empty


def rectangular_boxes(landmarks: torch.Tensor, box_size: tuple[float, float, float, float],
                      image_size: int) -> torch.Tensor:
    """Fixed-size boxes (B, 4, 4) centred on each part's landmarks: the rectangular baseline.

    ``box_size`` gives each part's box side as a fraction of the image (eyes, eyes, nose, mouth), as
    Cascade EF-GAN crops fixed-size patches around landmark centres; neighbouring boxes overlap.
    """
    centres = torch.stack([landmarks[:, list(idx)].mean(1) for idx in PART_LANDMARKS], 1)  # (B, 4, 2)
    half = torch.tensor(box_size, device=landmarks.device, dtype=landmarks.dtype).view(1, 4, 1) * image_size / 2
    # landmarks use pixel centres at integers; boxes use pixel edges: shift by half a pixel
    c = centres + 0.5
    return torch.cat([c - half, c + half], -1)


def _crop_grid(boxes: torch.Tensor, image_size: int, out_size: int) -> torch.Tensor:
    """Sampling grids (N, s, s, 2) that read each box out of an image (align_corners=False units)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    t = (torch.arange(out_size, device=boxes.device, dtype=boxes.dtype) + 0.5) / out_size  # (s,)
    gx = (x0[:, None] + (x1 - x0)[:, None] * t[None]) / image_size * 2 - 1  # (N, s)
    gy = (y0[:, None] + (y1 - y0)[:, None] * t[None]) / image_size * 2 - 1
    return torch.stack([gx[:, None, :].expand(-1, out_size, -1), gy[:, :, None].expand(-1, -1, out_size)], -1)


def _paste_grid(boxes: torch.Tensor, image_size: int) -> torch.Tensor:
    """Grids (N, H, W, 2) that read a part crop back at its box; points outside the box fall outside [-1, 1]."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    p = torch.arange(image_size, device=boxes.device, dtype=boxes.dtype) + 0.5  # pixel centres, in pixels
    gx = (p[None] - x0[:, None]) / (x1 - x0)[:, None] * 2 - 1  # (N, W)
    gy = (p[None] - y0[:, None]) / (y1 - y0)[:, None] * 2 - 1
    return torch.stack([gx[:, None, :].expand(-1, image_size, -1), gy[:, :, None].expand(-1, -1, image_size)], -1)


def extract_parts(images: torch.Tensor, boxes: torch.Tensor, out_size: int,
                  masks: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each box and resize it to ``out_size`` (B, P, 3, s, s); with ``masks`` the image is first
    multiplied by each part's mask, ``x_p = M_p * x`` (Eq. 2), so the crops keep the parser's gradient."""
    B, P = boxes.shape[:2]
    S = images.shape[-1]
    src = images.unsqueeze(1).expand(B, P, *images.shape[1:])
    if masks is not None:
        src = src * masks.unsqueeze(2)
    grid = _crop_grid(boxes.reshape(B * P, 4), S, out_size)
    crops = F.grid_sample(src.reshape(B * P, *images.shape[1:]), grid, mode="bilinear", align_corners=False)
    return crops.view(B, P, images.shape[1], out_size, out_size)


def stitch_parts(parts: torch.Tensor, boxes: torch.Tensor, image_size: int, average_overlaps: bool = False):
    """Place translated parts (B, P, 3, s, s) back at their boxes in an empty (zero) image (B, 3, S, S).

    Masked parts have a zero background, so overlapping boxes simply add (the semantic parts are
    disjoint). The rectangular baseline's boxes overlap with content: ``average_overlaps`` averages them.
    """
    B, P = parts.shape[:2]
    grid = _paste_grid(boxes.reshape(B * P, 4), image_size)
    flat = parts.reshape(B * P, *parts.shape[2:])
    placed = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    placed = placed.view(B, P, -1, image_size, image_size)
    if not average_overlaps:
        return placed.sum(1)
    inside = ((grid.abs() <= 1).all(-1)).float().view(B, P, 1, image_size, image_size)
    return placed.sum(1) / inside.sum(1).clamp(min=1)


class _Residual(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.InstanceNorm2d(dim, affine=True), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.InstanceNorm2d(dim, affine=True))

    def forward(self, x):
        return x + self.body(x)


class FusionNetwork(nn.Module):
    """G_fusion (Eq. 4): blends ``x_global`` and ``x_local`` (concatenated, 6 channels) into the output.

    Two convolution blocks, four residual blocks and a convolution, as Sec. 3.2 describes; the layer
    details (7x7 then 3x3 convolutions, instance norm, tanh output) follow StarGAN's generator, which
    the paper uses for every other generator.
    With ``residual`` (not the paper's), the network outputs ``x_global`` plus its correction, and the last
    convolution starts at zero, so that an untrained fusion network passes the global edit through.
    """

    def __init__(self, dim: int = 64, n_res: int = 4, residual: bool = False):
        super().__init__()
        self.residual = residual
        layers = [nn.Conv2d(6, dim, 7, 1, 3, bias=False), nn.InstanceNorm2d(dim, affine=True), nn.ReLU(inplace=True),
                  nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.InstanceNorm2d(dim, affine=True), nn.ReLU(inplace=True)]
        layers += [_Residual(dim) for _ in range(n_res)]
        last = nn.Conv2d(dim, 3, 7, 1, 3, bias=False)
        if residual:
            nn.init.zeros_(last.weight)
        layers += [last] if residual else [last, nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x_global: torch.Tensor, x_local: torch.Tensor) -> torch.Tensor:
        out = self.main(torch.cat([x_global, x_local], 1))
        return x_global + out if self.residual else out


def build_parser(cfg: HierarchicalConfig) -> nn.Module:
    from ...nets import parsing
    if cfg.parser == "bisenet":
        return parsing.BiSeNet(backbone_weights=cfg.backbone_weights or None)
    return parsing.UNet(base=cfg.parser_width)


class HierarchicalGAN(nn.Module):
    """Parser, global / local / fusion generators and their six discriminators (Fig. 2)."""

    def __init__(self, cfg: HierarchicalConfig, parser: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        g = lambda: stargan.Generator(cfg.g_conv_dim, cfg.c_dim, cfg.g_repeat)  # noqa: E731
        def d(size):
            return stargan.Discriminator(size, cfg.d_conv_dim, cfg.c_dim,
                                         min(cfg.d_repeat, stargan.default_d_repeat(size)))

        sg = cfg.global_stargan()
        if sg is None:
            self.G_global, self.D_global = g(), d(cfg.image_size)
        else:  # the baselines chapter's StarGAN networks, at their own width (weights: build_hierarchical)
            self.G_global = stargan.Generator(sg.g_conv_dim, cfg.c_dim, sg.g_repeat_num,
                                              residual=sg.g_residual, upsample=sg.g_upsample)
            self.D_global = stargan.Discriminator(cfg.image_size, sg.d_conv_dim, cfg.c_dim, sg.d_repeat_num)
        if not cfg.train_global:
            self.G_global.requires_grad_(False)
            self.D_global.requires_grad_(False)
        self.G_parts = nn.ModuleList([g() for _ in PARTS])
        self.fusion = FusionNetwork(cfg.fusion_dim, residual=cfg.fusion_residual)
        self.D_fusion = d(cfg.image_size) if sg is None else stargan.Discriminator(
            cfg.image_size, sg.d_conv_dim, cfg.c_dim, sg.d_repeat_num)
        self.D_parts = nn.ModuleList([d(cfg.part_size) for _ in PARTS])
        self.parser = parser if parser is not None else (build_parser(cfg) if cfg.parts == "semantic" else None)

    # --- the forward pass of Fig. 2 -----------------------------------------------------------------
    def part_layout(self, x: torch.Tensor, landmarks: torch.Tensor | None = None):
        """Soft part masks (B, 4, H, W) or None, boxes (B, 4, 4) and the count of parts not found."""
        cfg = self.cfg
        if cfg.parts == "rectangular":
            if landmarks is None:
                raise ValueError("the rectangular baseline crops boxes around landmarks: pass landmarks")
            return None, rectangular_boxes(landmarks, cfg.box_size, x.shape[-1]), 0
        from ...nets.parsing import soft_part_masks
        self.parser.eval()  # batch norm uses its pre-trained statistics; gradients still reach the weights
        with torch.set_grad_enabled(cfg.end_to_end and torch.is_grad_enabled()):
            masks = soft_part_masks(self.parser(x), cfg.temperature)
        boxes, empty = mask_boxes(masks, margin=cfg.box_margin)
        return masks, boxes, int(empty.sum())

    def translate(self, x: torch.Tensor, c: torch.Tensor, layout=None, landmarks=None) -> dict:
        """Translate images ``x`` to expressions ``c`` (one-hot, B x c_dim); returns every intermediate."""
        cfg = self.cfg
        masks, boxes, missing = layout if layout is not None else self.part_layout(x, landmarks)
        parts_in = extract_parts(x, boxes, cfg.part_size, masks=masks)  # Eq. 2
        active = cfg.active_parts
        parts_out = torch.zeros_like(parts_in)
        for p in active:  # Eq. 3
            parts_out[:, p] = self.G_parts[p](parts_in[:, p], c)
        x_global = self.G_global(x, c)
        x_local = stitch_parts(parts_out, boxes, x.shape[-1], average_overlaps=cfg.parts == "rectangular")
        x_out = self.fusion(x_global, x_local)  # Eq. 4
        return {"out": x_out, "global": x_global, "local": x_local, "parts_in": parts_in, "parts_out": parts_out,
                "masks": masks, "boxes": boxes, "missing": missing}

    def forward(self, x: torch.Tensor, c: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        return self.translate(x, c, landmarks=landmarks)["out"]

    def reconstruct(self, fake: dict, c_src: torch.Tensor) -> dict:
        """Each generator undoes its own translation (Eq. 7): x̂_p = G_p(x_t^p, y_s), then fused again."""
        parts = torch.zeros_like(fake["parts_out"])
        for p in self.cfg.active_parts:
            parts[:, p] = self.G_parts[p](fake["parts_out"][:, p], c_src)
        x_global = self.G_global(fake["global"], c_src)
        x_local = stitch_parts(parts, fake["boxes"], fake["global"].shape[-1],
                                 average_overlaps=self.cfg.parts == "rectangular")
        return {"out": self.fusion(x_global, x_local), "global": x_global, "parts": parts}

    def generator_modules(self) -> list[nn.Module]:
        """The generators being trained (the global one only when ``train_global``)."""
        return [self.G_global] * self.cfg.train_global + [*self.G_parts, self.fusion]

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.D_global] * self.cfg.train_global + [*self.D_parts, self.D_fusion]




def build_hierarchical(cfg: HierarchicalConfig, parser_state: dict | None = None,
                       global_nets: dict | None = None) -> HierarchicalGAN:
    """The networks of ``cfg``, initialised from ``cfg.seed``; ``parser_state``: pre-trained parser weights;
    ``global_nets``: the StarGAN ``{"G", "D"}`` whose weights the global branch starts from (``global_from``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = HierarchicalGAN(cfg)
    if parser_state is not None:
        if model.parser is None:
            raise ValueError("the rectangular baseline has no parser to load weights into")
        model.parser.load_state_dict(parser_state)
    if global_nets is not None:
        if not cfg.global_from:
            raise ValueError("global_nets given, but the config trains its global generator from scratch: "
                             "set global_from to the StarGAN's profile")
        model.G_global.load_state_dict(global_nets["G"].state_dict())
        # the paper's critics are unconditional: a projection critic's label term (``embed``, the baselines'
        # cpu recipe) is left out, and the global and fusion critics start from its trunk and heads
        critic = {k: v for k, v in global_nets["D"].state_dict().items() if not k.startswith("embed.")}
        model.D_global.load_state_dict(critic)
        model.D_fusion.load_state_dict(critic)
    return model



class HierarchicalEditor:
    """``editor(images, source_expression, target_expression)`` for the evaluation harness: the fusion
    output x_t of Fig. 2. The rectangular baseline crops around landmarks, which the editor reads from
    ``dataset`` by sample index (SynthFaces' ground truth; the harness passes ``indices``)."""

    def __init__(self, model: HierarchicalGAN, dataset=None):
        self.model, self.dataset = model.eval(), dataset
        self.wants_indices = model.cfg.parts == "rectangular"
        if self.wants_indices and dataset is None:
            raise ValueError("the rectangular baseline needs landmarks: pass the data set being edited "
                             "(hierarchical_editor(model, dataset))")

    def __call__(self, images, source, target, indices=None):
        c = F.one_hot(target.long(), self.model.cfg.c_dim).float().to(images.device)
        landmarks = None
        if self.wants_indices:
            landmarks = self.dataset.batch(torch.as_tensor(indices).cpu())["landmarks"].to(images.device)
        return self.model.translate(images, c, landmarks=landmarks)["out"]

    def __repr__(self) -> str:
        cfg = self.model.cfg
        return f"HierarchicalEditor(parts={cfg.parts!r}, end_to_end={cfg.end_to_end}, exclude={cfg.exclude})"


def hierarchical_editor(model: HierarchicalGAN, dataset=None) -> HierarchicalEditor:
    return HierarchicalEditor(model, dataset)



@torch.no_grad()
def part_centre_landmarks(parser: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """68 stand-in landmarks (B, 68, 2) for faces without any: every landmark of a part's group
    (:data:`PART_LANDMARKS`) sits at the centre of mass of that part in the
    parser's segmentation (pixel units), so that :func:`rectangular_boxes`
    centres its boxes there; a part the parser does not find is placed at the image centre."""
    was_training = parser.training
    parser.eval()
    dev = next(parser.parameters()).device
    masks = hard_part_masks(parser(images.to(dev)).float().argmax(1)).cpu()  # (B, 4, H, W)
    parser.train(was_training)
    B, _, S_, _ = masks.shape
    ys, xs = torch.meshgrid(torch.arange(S_, dtype=torch.float32), torch.arange(S_, dtype=torch.float32), indexing="ij")
    area = masks.sum((2, 3))
    cx = torch.where(area > 0, (masks * xs).sum((2, 3)) / area.clamp(min=1), torch.full_like(area, (S_ - 1) / 2))
    cy = torch.where(area > 0, (masks * ys).sum((2, 3)) / area.clamp(min=1), torch.full_like(area, (S_ - 1) / 2))
    out = torch.zeros(B, 68, 2)
    for p, idx in enumerate(PART_LANDMARKS):
        out[:, list(idx), 0] = cx[:, p, None]
        out[:, list(idx), 1] = cy[:, p, None]
    return out

