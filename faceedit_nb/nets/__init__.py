"""Networks: one module per model family (import them explicitly, e.g. ``from faceedit_nb.nets import stargan``)."""
