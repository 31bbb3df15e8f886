"""Bodur et al., "A Unified Architecture of Semantic Segmentation and Hierarchical GANs for Expression
Manipulation" (seg-hierarchical-gan.txt).

A face parser cuts the image into 4 soft local parts (Eq. 1-2); a global StarGAN generator translates the
whole face and four local StarGAN generators translate the parts (Eq. 3); the parts are stitched back and
a fusion network blends both (Eq. 4). Every generator has its own critic with an auxiliary expression
classifier (Eq. 5-6) and a cycle reconstruction (Eq. 7); the total is Eq. 8. End to end, the local and
fusion losses also update the parser (Eq. 9). Eq. 5's log-GAN loss is trained as WGAN-GP (StarGAN's
official training), and the paper's "200K epochs" is read as 200K iterations (StarGAN's unit).

Modules: :mod:`.config` (settings and the series' configs), :mod:`.model` (networks), :mod:`.losses`
(one function per equation), :mod:`.train` (one iteration, parser pre-training, training and loading).

The paper -> code
=================

==============  ===========================================================================================
paper           code
==============  ===========================================================================================
Eq. 1           tempered softmax of the parser, :func:`faceedit_nb.nets.parsing.soft_part_masks`
                (``HierarchicalConfig.temperature`` = 1 / φ)
Eq. 2           :func:`.model.extract_parts` (``x_s^p = M_p ⊗ x_s``, cropped and resized to ``part_size``)
Eq. 3           ``HierarchicalGAN.G_parts`` in :meth:`.model.HierarchicalGAN.translate`
Eq. 4           :func:`.model.stitch_parts` then :class:`.model.FusionNetwork`
Eq. 5           :func:`.losses.adversarial_loss` (critic), :func:`.losses.adversarial_loss_g` (WGAN-GP)
Eq. 6           :func:`.losses.classification_loss`
Eq. 7           :func:`.losses.reconstruction_loss`, :meth:`.model.HierarchicalGAN.reconstruct`
Eq. 8           :func:`.losses.discriminator_loss`, :func:`.losses.generator_loss` (λ_global, λ_local, λ_fusion)
Eq. 9           :func:`.train.parameter_groups` (the parser in the generators' optimiser, ``parser_lr``)
Table 1         ``notebooks/seg_hierarchical/04_results``: :func:`.config.series_configs` + StarGAN and
                GANimation from :mod:`faceedit_nb.papers`, measured by :func:`faceedit_nb.metrics.evaluate`
Table 2         :func:`.train.parser_miou` before / after end to end (04_results)
Table 3         ``exclude`` (03_ablations)
Table A1        ``parser="unet"`` / ``"bisenet"``, with and without ``end_to_end`` (03_ablations)
Figure 1        part masks vs rectangles, ``parts="semantic"`` / ``"rectangular"`` (01_architecture)
Figure 2        :class:`.model.HierarchicalGAN` (01_architecture)
Figure 3        per-class EEA and preservation error (04_results)
Figure 4        λ_global, λ_local, λ_fusion sweep (03_ablations)
Figure 5        ``parser_fraction`` (03_ablations)
Figures 6-8     edits, difference maps, parser masks before / after (04_results)
==============  ===========================================================================================
"""
from .config import (DATASETS, OUR_CHOICES, PAPER_STATES, PARSER_KEYS, PARTS, SERIES, HierarchicalConfig,
                     check_evaluation_data, config_for, parser_config, series_configs)
from .losses import (adversarial_loss, adversarial_loss_g, classification_loss, discriminator_loss,
                     generator_loss, real_inputs, reconstruction_loss)
from .model import (PART_CLASSES, PART_LANDMARKS, FusionNetwork, HierarchicalEditor, HierarchicalGAN,
                    build_hierarchical, build_parser, extract_parts, hard_part_masks, hierarchical_editor,
                    mask_boxes, part_centre_landmarks, rectangular_boxes, stitch_parts)
from .train import (HierarchicalBatches, hierarchical_optimizers, hierarchical_step, load_global_stargan,
                    load_hierarchical, load_parser, parameter_groups, parser_miou, parser_training_set,
                    pretrain_parser, train_all, train_hierarchical)

from . import config, losses, model, train  # noqa: E402

__all__ = [name for mod in (config, losses, model, train) for name in mod.__all__]
