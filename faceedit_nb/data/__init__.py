"""Data: SynthFaces (the default, procedural data set) and loaders for the real data sets.

Every data set returns the same sample dict (``image`` in [-1, 1], ``identity``, ``expression``, ``aus``,
``attributes``, ``mask``, ``landmarks``, ...); keys a data set lacks are absent.
"""
from .export import FORMATS, export_synthfaces
from .formats import (AffectNet, CelebA, CelebAMaskHQ, CorruptImageError, LabelFileError, MissingImageError,
                      OpenFaceAUs, RaFD, SampleError, read_openface_csv)
from .synthfaces import SPLITS, SynthFaces, identity_attributes, render

__all__ = ["SPLITS", "SynthFaces", "identity_attributes", "render", "export_synthfaces", "FORMATS", "RaFD",
           "AffectNet", "CelebA", "CelebAMaskHQ", "OpenFaceAUs", "read_openface_csv", "LabelFileError",
           "CorruptImageError", "MissingImageError", "SampleError"]
