"""The methods of the book, one module (or package) per method; this file imports nothing, so that a
chapter depends only on the methods it uses (the book's execution cache follows imports).

* Baselines: :mod:`.stargan` (StarGAN, and STGAN's difference condition), :mod:`.ganimation`,
  :mod:`.attgan` (AttGAN and STGAN-diff).
* Paper 1: :mod:`.seg_hierarchical` (Bodur et al., segmentation + hierarchical GANs).

A variant of a method imports its parent's module and extends it: its config subclasses the parent's
config and overrides only what the paper changes; its step calls or wraps the parent's step. Shared
plumbing (batches, run / load, the worker pool) is :mod:`faceedit_nb.methods`.
"""
