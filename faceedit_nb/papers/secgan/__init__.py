"""SeCGAN: Sun, Bhattarai, Chen, Kim, "SeCGAN: Parallel Conditional Generative Adversarial Networks for Face
Editing via Semantic Consistency" (arXiv 2111.09298; secgan.txt). No public code: the appendix gives the
semantic branch layer by layer (Tables 2-3) and the training loop (Algorithm 1).

Two branches train in parallel on the same mini-batch: the RGB branch (G_rgb, D_rgb: the backbone's own
StarGAN or AttGAN, conditioned on STGAN's y_diff = y_trg - y_src) and the semantic branch (G_seg, D_seg: the
same networks reading and writing the 12-segment masks of a frozen parser P). The semantic consistency
losses tie them: P's parse of G_rgb's output should match G_seg's translated mask, and the other way round.
Only G_rgb is kept for editing. The series extends :mod:`faceedit_nb.papers.stargan` and
:mod:`faceedit_nb.papers.attgan` (their configs, networks, label handling and editors).

Modules: :mod:`.config` (settings per backbone, the series, Table 1's numbers), :mod:`.model` (P, G_seg,
D_seg, + Concat, editors), :mod:`.losses` (one function per equation), :mod:`.train` (P's pre-training,
Algorithm 1, training and loading), :mod:`.evaluation` (the series measured, Figure 5).

The paper -> code
=================

==============  ===========================================================================================
paper           code
==============  ===========================================================================================
Sec. 3, P       :class:`.model.FrozenParser` over a UNet (:func:`.train.load_parser`), 19 classes summed into
                the 12 segments :data:`faceedit_nb.labels.SECGAN_CLASSES` (:func:`.model.segment_probabilities`,
                mapping ``labels.TO_SECGAN``); its one-hot s: :func:`.model.one_hot_segments`
Sec. 3.1        y_diff: ``condition="difference"`` of both backbones, :meth:`.model.Backbone.condition`
Eq. 1           :func:`.losses.adversarial_loss_d_rgb`
Eq. 2           :func:`.losses.adversarial_loss_g_rgb`
Eq. 3           :func:`.losses.classification_loss_d_rgb`
Eq. 4           :func:`.losses.classification_loss_g_rgb`
Eq. 5           :func:`.losses.reconstruction_loss_rgb` (with G_rgb(x, 0))
Eq. 6           :func:`.losses.adversarial_loss_d_seg`
Eq. 7           :func:`.losses.adversarial_loss_g_seg`
Eq. 8           :func:`.losses.classification_loss_d_seg`
Eq. 9           :func:`.losses.classification_loss_g_seg`
Eq. 10          :func:`.losses.reconstruction_loss_seg` (cross-entropy with G_seg(s, 0))
Eq. 11          :func:`.losses.semantic_consistency_loss_g_rgb`
Eq. 12          :func:`.losses.semantic_consistency_loss_g_seg`
Eq. 13-16       :func:`.losses.discriminator_loss_rgb`, :func:`.losses.generator_loss_rgb`,
                :func:`.losses.discriminator_loss_seg`, :func:`.losses.generator_loss_seg`
Eq. 17-20       the four ``tr.update`` calls of :func:`.train.secgan_step`
Algorithm 1     :func:`.train.secgan_step` (critics every iteration, generators every N-th on the same batch)
Sec. 4.3        :class:`.config.SeCGANStarGANConfig` / :class:`.config.SeCGANAttGANConfig` paper profile;
                :func:`.train.secgan_schedule` (linear to 0; exponential to 2e-6)
Sec. 4.5        + Concat: ``variant="concat"``, :func:`.model.concat_generator`
Table 1         ``notebooks/secgan/04_results``: :func:`.config.series_configs`, :data:`.config.TABLE1`
Table 2         :func:`.model.semantic_generator` / :func:`.model.semantic_discriminator` on StarGAN;
                :func:`.model.table_layers` (rows with parameter counts; 01_architecture)
Table 3         the same on AttGAN (label injected in the decoder, 1024 + n_a and 1536 + n_a channels)
Figure 2        :func:`.model.build_secgan` (01_architecture)
Figure 3        λ_sc sweep (03_ablations)
Figure 4        per-attribute and per-expression accuracy (04_results), :func:`.evaluation.class_difference`
Figure 5        edits, difference heat maps and G_seg's translated masks, :func:`.evaluation.show_edits`;
                the change inside the attribute's true region, :func:`.evaluation.change_focus` (04_results)
Sec. 5 remark   "pre-training could be done at a small scale": ``parser_fraction`` (03_ablations)
==============  ===========================================================================================
"""
from .config import (DATASETS, OUR_CHOICES, PAPER_STATES, PARSER_KEYS, TABLE1, VARIANTS, SeCGANAttGANConfig,
                     SeCGANStarGANConfig, SemanticSettings, check_evaluation_data, parser_config, series_configs)
from .losses import (adversarial_loss_d_rgb, adversarial_loss_d_seg, adversarial_loss_g_rgb, adversarial_loss_g_seg,
                     classification_loss_d_rgb, classification_loss_d_seg, classification_loss_g_rgb,
                     classification_loss_g_seg, discriminator_loss_rgb, discriminator_loss_seg, generator_loss_rgb,
                     generator_loss_seg, mask_cross_entropy, reconstruction_loss_rgb, reconstruction_loss_seg,
                     semantic_consistency_loss_g_rgb, semantic_consistency_loss_g_seg)
from .model import (N_SEGMENTS, SEGMENT_MATRIX, Backbone, FrozenParser, backbone_of, build_parser, build_secgan,
                    concat_generator, one_hot_segments, rechannel, secgan_editor, segment_probabilities,
                    semantic_discriminator, semantic_generator, table_layers)
from .train import (SeCGANBatches, exponential_decay, load_parser, load_secgan, method_name, parser_miou,
                    parser_training_set, pretrain_parser, secgan_optimizers, secgan_schedule, secgan_step,
                    train_all, train_secgan)

from .evaluation import (change_focus, class_difference, edit_classes, evaluate_all, focus_difference,
                         group_gain_difference, is_difference, show_edits, true_regions)

from . import config, evaluation, losses, model, train  # noqa: E402

__all__ = [name for mod in (config, losses, model, train, evaluation) for name in mod.__all__]
