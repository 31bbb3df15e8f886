"""faceedit_nb: models, losses, data, training and metrics behind the faceedit-nb book."""
__version__ = "0.1.0"
