"""Distribution metrics through torchmetrics: FID, KID and the Inception Score.

Every paper measures image quality with ImageNet networks (FID and IS with Inception-v3, ssFID with SwAV);
their weights are not available offline. The book therefore computes the same statistics on the features
of **its own networks** by default: the penultimate features of the expression oracle (see
:mod:`faceedit_nb.oracles`) for FID and KID, and the expression oracle's softmax for IS. These are labelled
"FID (own features)" and "IS (own classifier)": they rank editors on SynthFaces but are **not comparable to
the Inception numbers printed in the papers** (a different network, different images, a different scale).
With a local weights file (:mod:`faceedit_nb.metrics.pretrained`) the same functions give Inception FID /
IS and the ssFID of secgan.txt.

The functions below take features (or logits) that were already computed, so the harness runs each
network once per image; torchmetrics does the statistics through a pass-through "feature extractor".
:func:`fid`, :func:`kid` and :func:`inception_score` take images and a network instead.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

__all__ = ["Precomputed", "FeatureNet", "frechet_distance", "kernel_distance", "inception_score_from_logits",
           "extract", "fid", "kid", "inception_score"]

# Every figure is measured by one process on the features it is given: torchmetrics would otherwise gather its
# states from every process of a data-parallel group (faceedit_nb.distributed), where process 0 measures alone.
_LOCAL = dict(sync_on_compute=False, dist_sync_on_step=False)


class Precomputed(nn.Module):
    """A pass-through feature extractor for torchmetrics: its inputs already are ``(N, D)`` features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected ({'{N}'}, {self.num_features}) features; got {tuple(features.shape)}")
        return features


class FeatureNet(nn.Module):
    """Any callable ``images -> (N, D)`` as a torchmetrics feature extractor (an ``nn.Module`` with
    ``num_features``), e.g. ``FeatureNet(oracles.expression_features, 256)``."""

    def __init__(self, fn, num_features: int):
        super().__init__()
        self.fn, self.num_features = fn, int(num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images).float()


def _check(real: torch.Tensor, fake: torch.Tensor, what: str, min_n: int = 2):
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"{what}: expected (N, D) real and fake features with the same D; got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    if len(real) < min_n or len(fake) < min_n:
        raise ValueError(f"{what} needs at least {min_n} real and {min_n} fake samples; "
                         f"got {len(real)} and {len(fake)}")


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to real and fake features,
    ``|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))``, by torchmetrics in float64.

    Mind the sample size: FID is biased upwards for small sets, so compare FIDs of equally many images.
    """
    _check(real, fake, "FID")
    metric = FrechetInceptionDistance(feature=Precomputed(real.shape[1]), **_LOCAL)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased squared MMD with the cubic polynomial kernel
    ``(x.y / D + 1)^3``, averaged over ``subsets`` random subsets of ``min(subset_size, N_real, N_fake)``
    samples (torchmetrics, in float64); returns mean and standard deviation over subsets. When both sets
    are no larger than a subset, every subset is the whole of both and one is computed (std 0).

    Unbiased for *independent* samples: about 0 (it can be slightly negative) when both come from one
    distribution, whatever their size. Edits of the test images are not independent of them: a fake set
    that contains real images themselves (an editor that leaves some faces unchanged) gets a negative
    KID. The kernel assumes features of order 1 (as Inception's are); scale other features first.
    Seeded: the same inputs give the same number."""
    _check(real, fake, "KID")
    size = min(subset_size, len(real), len(fake))
    if size >= len(real) and size >= len(fake):
        subsets = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "KID will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=Precomputed(real.shape[1]), subsets=subsets, subset_size=size,
                                         **_LOCAL)
    metric.update(real.double(), real=True)  # float32 loses the near-zero values to cancellation
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), 0.0 if subsets == 1 else float(std)


def inception_score_from_logits(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` on each of ``splits`` random
    subsets (10, as secgan.txt Sec. 4.4 and GANimation / relative-au-msf.txt Table 1), mean and standard
    deviation over subsets (torchmetrics). Between 1 (every image gets the same prediction, or every
    prediction is uniform) and the number of classes (confident and balanced)."""
    if logits.dim() != 2 or len(logits) < splits:
        raise ValueError(f"IS needs (N, C) logits with N >= splits={splits}; got {tuple(logits.shape)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=Precomputed(logits.shape[1]), splits=splits, **_LOCAL)
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


@torch.no_grad()
def extract(net, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Run ``net`` over ``images`` in batches; float32 ``(N, D)`` on the CPU."""
    return torch.cat([net(images[i:i + batch_size]).float().cpu() for i in range(0, len(images), batch_size)])


def fid(real_images: torch.Tensor, fake_images: torch.Tensor, features: nn.Module, batch_size: int = 256) -> float:
    """FID between two image sets with a feature network (own features, or :func:`pretrained.load_inception`
    for the papers' Inception FID, :func:`pretrained.load_swav` for secgan.txt's ssFID)."""
    return frechet_distance(extract(features, real_images, batch_size), extract(features, fake_images, batch_size))


def kid(real_images: torch.Tensor, fake_images: torch.Tensor, features: nn.Module, batch_size: int = 256,
        **kwargs) -> tuple[float, float]:
    """KID between two image sets with a feature network; ``kwargs`` go to :func:`kernel_distance`."""
    return kernel_distance(extract(features, real_images, batch_size), extract(features, fake_images, batch_size),
                           **kwargs)


def inception_score(images: torch.Tensor, classifier, splits: int = 10, batch_size: int = 256,
                    seed: int = 0) -> tuple[float, float]:
    """IS of an image set; ``classifier`` maps images to logits (an oracle's ``expression_logits``, or an
    Inception network's ``.logits``)."""
    return inception_score_from_logits(extract(classifier, images, batch_size), splits, seed)
