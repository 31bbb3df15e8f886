"""SeCGAN's networks (secgan.txt, Sec. 3 and Appendix A.2): the frozen parser P mapped to the paper's 12
segments, the semantic branch G_seg / D_seg of Tables 2 (StarGAN) and 3 (AttGAN), the + Concat generator
of Sec. 4.5, and the editors.

"The only differences separating G_seg and D_seg from their RGB counterparts G_rgb and D_rgb are the number
of channels of the inputs (of both generator and discriminator), number of channels of the generator
output, and the final activation function of the generator" (A.2). So each semantic network is its
backbone's network (:func:`faceedit_nb.papers.stargan.build_stargan`, :func:`faceedit_nb.papers.attgan.build_attgan`)
with those layers exchanged by :func:`rechannel`: G_seg reads the 12-channel one-hot mask (StarGAN: plus
the n_a label channels tiled, Table 2; AttGAN: the label injected in the decoder, Table 3) and ends in a
softmax over the 12 segments; D_seg reads 12 channels. + Concat is G_rgb whose first layer reads the image
and the one-hot mask, 3 + 12 channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import labels as L
from ... import losses
from ...methods import seeded
from ...nets import parsing
from ..attgan import attgan_editor, build_attgan
from ..stargan import build_stargan, stargan_domain_vector, stargan_editor, stargan_labels
from .config import SeCGANStarGANConfig

__all__ = ["N_SEGMENTS", "SEGMENT_MATRIX", "segment_probabilities", "one_hot_segments", "FrozenParser",
           "build_parser", "rechannel", "semantic_generator", "semantic_discriminator", "concat_generator",
           "backbone_of", "build_secgan", "Backbone", "secgan_editor", "table_layers"]

N_SEGMENTS = len(L.SECGAN_CLASSES)  # 12: skin, eyebrows, eyes, eyeglasses, ears, earrings, nose, mouth, lips,
#                                      neck, hair, others (= background + necklace + hat + cloth)
# (19, 12): 1 where a CelebAMask-HQ class belongs to a SeCGAN segment (labels.TO_SECGAN)
SEGMENT_MATRIX = F.one_hot(L.TO_SECGAN, N_SEGMENTS).float()


def segment_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P's soft 12-segment mask ŝ = P(x) from a 19-class parser's logits (B, 19, H, W): the class
    probabilities summed within each segment (differentiable, so Eq. 11 reaches G_rgb through P)."""
    p = torch.softmax(logits.float(), dim=1)
    return torch.einsum("bchw,cs->bshw", p, SEGMENT_MATRIX.to(p.device))


def one_hot_segments(soft: torch.Tensor) -> torch.Tensor:
    """The one-hot representation s of a soft mask ŝ (B, 12, H, W): 1 at each pixel's arg-max segment."""
    return F.one_hot(soft.argmax(1), soft.shape[1]).permute(0, 3, 1, 2).to(soft.dtype)


class FrozenParser(nn.Module):
    """P: a parser held frozen (Sec. 3, "fixed parsing network"): no parameter needs a gradient and it
    stays in eval mode (its batch norm uses the pre-training statistics) even when the training engine puts
    every model in train mode. ``forward(x)`` returns the soft 12-segment mask ŝ; ``one_hot(x)`` s."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return segment_probabilities(self.net(x))

    @torch.no_grad()
    def one_hot(self, x: torch.Tensor) -> torch.Tensor:
        return one_hot_segments(self(x))


def build_parser(cfg) -> parsing.UNet:
    """The 19-class UNet behind P (:mod:`faceedit_nb.nets.parsing`), of width ``cfg.parser_width``."""
    return seeded(cfg.seed, lambda: parsing.UNet(base=cfg.parser_width))


_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _like(conv: nn.Module, n_in: int, n_out: int) -> nn.Module:
    """A conv / transposed conv with the hyper-parameters of ``conv`` and other channel counts."""
    return type(conv)(n_in, n_out, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


def _swap(net: nn.Module, path: str, new: nn.Module) -> None:
    *parents, leaf = path.split(".")
    owner = net.get_submodule(".".join(parents)) if parents else net
    setattr(owner, leaf, new)  # nn.Sequential and nn.ModuleList accept their index as a name


def rechannel(net: nn.Module, *, n_in: int, n_out: int | None = None, activation: nn.Module | None = None) -> nn.Module:
    """``net`` with its first convolution reading ``n_in`` channels and, when ``n_out`` is given, its last
    convolution writing ``n_out`` channels and the module right after it replaced by ``activation`` (the
    generators' tanh). First and last are in registration order, which is the forward order of the backbones'
    networks (StarGAN's ``main``; AttGAN's encoder then decoder; the critics' trunk before their heads)."""
    convs = [name for name, m in net.named_modules() if isinstance(m, _CONVS)]
    first = net.get_submodule(convs[0])
    _swap(net, convs[0], _like(first, n_in, first.out_channels))
    if n_out is not None:
        last = net.get_submodule(convs[-1])
        _swap(net, convs[-1], _like(last, last.in_channels, n_out))
        if activation is not None:
            *parents, leaf = convs[-1].split(".")
            _swap(net, ".".join(parents + [str(int(leaf) + 1)]), activation)
    return net


class Backbone:
    """What differs between StarGAN and AttGAN inside Algorithm 1: where the layers to exchange sit, how labels
    become y_diff, the classification loss and the parents' loss weights (the paper keeps the originals')."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.name = "StarGAN" if isinstance(cfg, SeCGANStarGANConfig) else "AttGAN"
        if self.name == "StarGAN":
            self.cls_loss = losses.expression_ce if cfg.domain == "expression" else losses.attribute_bce_sum
            self.lambda_cls_d = self.lambda_cls_g = cfg.lambda_cls
            self.lambda_rec, self.lambda_gp, self.n_critic = cfg.lambda_rec, cfg.lambda_gp, cfg.n_critic
            self.n_labels = cfg.c_dim
        else:
            self.cls_loss = losses.attribute_bce_mean
            self.lambda_cls_d, self.lambda_cls_g = cfg.lambda_3, cfg.lambda_2
            self.lambda_rec, self.lambda_gp, self.n_critic = cfg.lambda_1, cfg.lambda_gp, cfg.n_d
            self.n_labels = len(L.ATTRIBUTES)

    def labels(self, batch: dict) -> torch.Tensor:
        """The batch's labels: expression indices, or the 13 attributes (0/1)."""
        if self.name == "StarGAN":
            return stargan_labels(batch, self.cfg)
        return batch["attributes"].float()

    def condition(self, G: nn.Module, y_src: torch.Tensor, y_trg: torch.Tensor) -> torch.Tensor:
        """y_diff = y_trg - y_src as the backbone's generator reads it (one-hot expressions or attributes for
        StarGAN; AttGAN's signed attributes, whose difference is the same y_trg - y_src)."""
        if self.name == "StarGAN":
            return stargan_domain_vector(y_trg, self.cfg) - stargan_domain_vector(y_src, self.cfg)
        return G.condition_vector(y_src, y_trg)

    def build(self) -> dict:
        return (build_stargan if self.name == "StarGAN" else build_attgan)(self.cfg)

    def g_input(self) -> int:
        """Channels of G_seg's first layer: 12 (+ n_a tiled labels for StarGAN, Table 2)."""
        return N_SEGMENTS + (self.n_labels if self.name == "StarGAN" else 0)


def backbone_of(cfg) -> Backbone:
    return Backbone(cfg)


def semantic_generator(cfg) -> nn.Module:
    """G_seg (Table 2 or 3): the backbone's generator reading the one-hot mask s (+ labels) and ending in a
    softmax over the 12 segments."""
    bb = backbone_of(cfg)
    return seeded(cfg.seed + 1, lambda: rechannel(bb.build()["G"], n_in=bb.g_input(), n_out=N_SEGMENTS,
                                                   activation=nn.Softmax(dim=1)))


def semantic_discriminator(cfg) -> nn.Module:
    """D_seg (Table 2 or 3): the backbone's critic (adversarial and classification heads) reading 12 channels."""
    bb = backbone_of(cfg)
    return seeded(cfg.seed + 2, lambda: rechannel(bb.build()["D"], n_in=N_SEGMENTS))


def concat_generator(cfg) -> nn.Module:
    """+ Concat (Sec. 4.5): G_rgb whose first layer reads the image and the one-hot mask s^in (3 + 12 channels,
    + n_a label channels for StarGAN); call it with ``torch.cat([x, s], 1)``."""
    bb = backbone_of(cfg)
    n_in = 3 + N_SEGMENTS + (bb.n_labels if bb.name == "StarGAN" else 0)
    return seeded(cfg.seed, lambda: rechannel(bb.build()["G"], n_in=n_in))


def build_secgan(cfg) -> dict[str, nn.Module]:
    """The networks of a variant: ``G``, ``D`` (the RGB branch, the backbone's, seeded as the backbone's own),
    ``P`` (the frozen parser, untrained here: :func:`faceedit_nb.papers.secgan.train.load_parser` fills it) and,
    for SeCGAN, ``G_seg``, ``D_seg``."""
    nets = backbone_of(cfg).build()
    if cfg.variant == "concat":
        nets["G"] = concat_generator(cfg)
    if cfg.needs_parser:
        nets["P"] = FrozenParser(build_parser(cfg))
    if cfg.semantic:
        nets["G_seg"] = semantic_generator(cfg)
        nets["D_seg"] = semantic_discriminator(cfg)
    return nets


def secgan_editor(nets: dict, cfg):
    """``editor(images, source, target)`` of the RGB generator for the evaluation harness (the backbone's own
    editor; + Concat parses the input first and feeds the one-hot mask with it)."""
    G = nets["G"]
    base = stargan_editor(G, cfg) if isinstance(cfg, SeCGANStarGANConfig) else attgan_editor(G, cfg)
    if cfg.variant != "concat":
        return base
    P = nets["P"]

    def edit(images, source, target):
        return base(torch.cat([images, P.one_hot(images).to(images.dtype)], 1), source, target)
    return edit


def table_layers(cfg, which: str) -> list[tuple[str, int]]:
    """The rows of Table 2 (StarGAN) or 3 (AttGAN) for ``which`` = ``"G_seg"`` or ``"D_seg"``, each with the
    parameters that row's layers have in our network: ``[(row text, parameters), ...]``, summing to the
    network's parameter count. Norm layers' affine weights are counted in their row."""
    bb = backbone_of(cfg)
    net = semantic_generator(cfg) if which == "G_seg" else semantic_discriminator(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    n_a = bb.n_labels
    rows = []
    if bb.name == "StarGAN" and which == "G_seg":
        m, d = list(net.main), cfg.g_conv_dim
        rows.append((f"({N_SEGMENTS} + {n_a}, h, h): Conv({d}, 7, 1), IN, ReLU", count(nn.Sequential(*m[0:3]))))
        for k in range(2):
            rows.append((f"Conv({d * 2 ** (k + 1)}, 4, 2), IN, ReLU", count(nn.Sequential(*m[3 + 3 * k:6 + 3 * k]))))
        res = m[9:9 + cfg.g_repeat_num]
        rows.append((f"{cfg.g_repeat_num} x Res{{Conv({4 * d}, 3, 1), IN, ReLU}}", count(nn.Sequential(*res))))
        lo = 9 + cfg.g_repeat_num
        for k in range(2):
            block = nn.Sequential(*m[lo + 3 * k:lo + 3 + 3 * k])
            rows.append((f"ConvT({d * 2 // 2 ** k}, 4, 2), IN, ReLU", count(block)))
        rows.append((f"Conv({N_SEGMENTS}, 7, 1, 3), Softmax", count(nn.Sequential(*m[lo + 6:]))))
    elif bb.name == "StarGAN":
        convs = [m for m in net.main if isinstance(m, nn.Conv2d)]
        for c in convs:
            rows.append((f"({c.in_channels}, ...): Conv({c.out_channels}, 4, 2), LReLU", count(c)))
        rows.append(("D_adv: Conv(1, 3, 1)", count(net.conv1)))
        k = net.conv2.kernel_size[0]
        rows.append((f"D_cls: Conv({n_a}, {k}, 1), Sigmoid", count(net.conv2)))
    elif which == "G_seg":
        for layer in net.enc_layers:
            c = layer[0]
            rows.append((f"({c.in_channels}, ...): Conv({c.out_channels}, 4, 2), BN, LReLU", count(layer)))
        for layer in net.dec_layers:
            c = layer[0]
            act = "Softmax" if isinstance(layer[-1], nn.Softmax) else "BN, ReLU"
            rows.append((f"({c.in_channels}, ...): ConvT({c.out_channels}, 4, 2), {act}", count(layer)))
    else:
        for layer in net.conv:
            c = layer[0]
            rows.append((f"({c.in_channels}, ...): Conv({c.out_channels}, 4, 2), IN, LReLU", count(layer)))
        rows.append((f"D_adv: FC({net.fc_adv[0].out_features}), ReLU, FC(1)", count(net.fc_adv)))
        rows.append((f"D_cls: FC({net.fc_cls[0].out_features}), ReLU, FC({n_a}), Sigmoid", count(net.fc_cls)))
    return rows
