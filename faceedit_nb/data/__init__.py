"""Data: SynthFaces (the default, procedural data set) and loaders for the real data sets."""
from .synthfaces import SPLITS, SynthFaces, identity_attributes, render

__all__ = ["SPLITS", "SynthFaces", "identity_attributes", "render"]
