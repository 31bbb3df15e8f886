"""Every metric of the five papers, and one harness that runs an editor through a paper's protocol.

Modules (small and separate, like NVlabs/stylegan2-ada-pytorch's ``metrics/``):

* :mod:`.classification`: expression editing accuracy (EEA), attribute editing accuracy, expression
  preservation error (classifier-based, per class and mean).
* :mod:`.distances`: ID distance (cosine), ACD (L2) of identity embeddings; ED (L2 of AUs).
* :mod:`.distribution`: FID, KID, Inception Score through torchmetrics, on the book's own networks by
  default ("FID (own features)", not comparable to the papers' Inception FIDs).
* :mod:`.pretrained`: Inception-v3 (FID/IS) and SwAV ResNet-50 (ssFID) from local weight files.
* :mod:`.image`: L1, PSNR, SSIM, confusion matrix, per-class IoU, mIoU.
* :mod:`.protocols`: the papers' test targets; :mod:`.editors`: the identity and ground-truth editors;
  :mod:`.harness`: :func:`evaluate`; :mod:`.table`: its result, :class:`EvalTable`.
"""
from .classification import (ClassRates, attribute_editing_accuracy, class_rates, expression_editing_accuracy,
                             expression_preservation_error)
from .distances import average_content_distance, expression_distance, id_distance
from .distribution import (FeatureNet, Precomputed, fid, frechet_distance, inception_score,
                           inception_score_from_logits, kernel_distance, kid)
from .editors import GroundTruthEditor, ground_truth_editor, identity_editor
from .harness import evaluate, own_features
from .image import confusion_matrix, iou_from_confusion, iou_per_class, l1_error, mean_iou, psnr, ssim
from .pretrained import load_inception, load_swav
from .protocols import PROTOCOLS, flip_attribute, get_protocol, stargan_targets
from .table import METRIC_NAMES, EvalTable

acd = average_content_distance

__all__ = [
    "ClassRates", "class_rates", "expression_editing_accuracy", "attribute_editing_accuracy",
    "expression_preservation_error", "id_distance", "average_content_distance", "acd", "expression_distance",
    "Precomputed", "FeatureNet", "frechet_distance", "kernel_distance", "inception_score_from_logits", "fid", "kid",
    "inception_score", "load_inception", "load_swav", "l1_error", "psnr", "ssim", "confusion_matrix",
    "iou_per_class", "iou_from_confusion", "mean_iou", "PROTOCOLS", "get_protocol", "flip_attribute", "stargan_targets",
    "identity_editor", "GroundTruthEditor", "ground_truth_editor", "evaluate", "own_features", "EvalTable",
    "METRIC_NAMES",
]
