"""DefGAN: Athar, Shu, Samaras, "Self-supervised Deformation Modeling for Facial Expression Editing"
(arXiv 1911.00735; defgan.txt; no public code), as an extension of GANimation
(:mod:`faceedit_nb.papers.ganimation`).

An edit happens in two stages: **motion editing** warps the input with a learned, bounded offset grid
(facial movement as a deformation), then **texture editing** (GANimation's generator on the warped image)
paints only what a warp cannot make, such as teeth, blended by a mask. Both generators are trained
jointly against GANimation's critic (WGAN-GP with an AU-regression head), with AU losses on the warped and
on the final image, the cycle, a face-identity loss on the warped image, and regularisers on the grid and
the mask.

Modules: :mod:`.config` (settings, the series' configs and ablations), :mod:`.model` (grids, the warp,
G_Def, both stages in one generator), :mod:`.losses` (one function per equation), :mod:`.train` (the
networks, the face-embedding network of Eq. 12, one iteration, training and loading), :mod:`.evaluation`
(identity distance per expression, the warp's share of an edit, single-AU effects, difference maps).

The paper -> code
=================

==============  ===========================================================================================
paper           code
==============  ===========================================================================================
Eq. 1, 4, 5     :class:`.model.DeformationGenerator` (G_Def, ``deform`` = G_Def^W), :func:`.model.warp`,
                :func:`.model.offset_grid`, :func:`.model.identity_grid` (I_Def)
Eq. 2, 6        G_Texture: :class:`faceedit_nb.nets.ganimation.Generator` (``convention="paper"``:
                I_y = M * T + (1 - M) * I*_y) inside :class:`.model.DefGANGenerator`
Eq. 3           :class:`.model.DefGANGenerator` (G_Comp; its ``forward`` returns every intermediate)
Sec. 3.1.1      the maximum offset (5 px at 128 px): ``DefGANConfig.max_offset``, ``offset_pixels``
App. D.1        G_Def = G_Texture's trunk with bilinear up-sampling of its offsets; D = GANimation's critic
                (:func:`.train.build_defgan`)
Eq. 7           :func:`.losses.critic_loss_d`, :func:`.losses.gradient_penalty_loss`
Eq. 8           :func:`.losses.critic_loss_g`
Eq. 9           :func:`.losses.expression_loss_g` (on I*_y and on I_y)
Eq. 10          :func:`.losses.expression_loss_d`
Eq. 11          :func:`.losses.cycle_loss`
Eq. 12          :func:`.losses.face_identity_loss`; its network :func:`.train.identity_network`
Eq. 13          :func:`.losses.grid_composition_loss`
Eq. 14          :func:`.losses.grid_regularisation_loss` (:func:`.losses.squared_total_variation`)
Eq. 15          :func:`.losses.mask_regularisation_loss`
Eq. 16, 17      :func:`.losses.generator_loss` (the generator step of :func:`.train.defgan_step`)
Eq. 18, 19      :func:`.losses.discriminator_loss` (its critic step)
Sec. 4.1        :class:`.config.DefGANConfig` defaults (batch 25, Adam 1e-4 (0.5, 0.999), 10 critic steps
                per generator step, 40 epochs decaying to 0 over the last 20); App. D.2's weights;
                :data:`.config.PAPER_STATES` / :data:`.config.OUR_CHOICES` say where each value comes from
Table 1         FID of GANimation and DefGAN: ``notebooks/defgan/04_results`` (own-feature FID; Inception FID
                with local weights)
Figure 1, 2     ``01_architecture`` (the two stages, the grid, a hand-made deformation, shapes)
Figure 3, 8     identity distance per expression: :func:`.evaluation.identity_distance_per_expression`, 04
Figure 4, 9, 10 edits of DefGAN and GANimation: 04
Figure 5, 13,   difference images: :func:`.evaluation.difference_map`, 04
14
Figure 6, 11,   single-AU effects on I*_y and I_y, with the grid: :func:`.evaluation.single_au_stages`, 04
12
Figure 7        the user study: not reproducible here (a human study; 04 says so)
Figures 17, 18  the comparison with StarGAN: not repeated (the baselines chapter has StarGAN on SynthFaces)
ablations       :data:`.config.ABLATIONS` (without the deformation stage, the texture stage, the identity
                loss, the grid regularisers): ``03_ablations``
beyond paper    the warp's share of each edit (:func:`.evaluation.stage_progress`); each single-AU edit
                against SynthFaces' true re-render and the share of its change inside the AU's true region
                (:func:`faceedit_nb.metrics.au_edits.relative_edit_errors`)
==============  ===========================================================================================
"""
from .config import (ABLATIONS, DATASETS, OUR_CHOICES, PAPER_STATES, SERIES, DefGANConfig, check_evaluation_data,
                     config_for, ganimation_config, series_configs)
from .losses import (critic_loss_d, critic_loss_g, cycle_loss, discriminator_loss, expression_loss_d,
                     expression_loss_g, face_identity_loss, generator_loss, gradient_penalty_loss,
                     grid_composition_loss, grid_regularisation_loss, mask_regularisation_loss,
                     squared_total_variation)
from .model import DefGANGenerator, DeformationGenerator, grid_to_pixels, identity_grid, offset_grid, warp
from .train import (build_defgan, defgan_batches, defgan_editor, defgan_optimizers, defgan_step, identity_network,
                    load_defgan, load_series, train_defgan)
from .evaluation import *  # noqa: F401,F403  (every name of evaluation.__all__)

from . import config, evaluation, losses, model, train  # noqa: E402

__all__ = [name for mod in (config, losses, model, train, evaluation) for name in mod.__all__]
