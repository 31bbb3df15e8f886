"""Ling et al., "Toward Fine-grained Facial Expression Manipulation" (ECCV 2020; relative-au-msf.txt;
code ``junleen/Expression-manipulator``), as an extension of GANimation (:mod:`faceedit_nb.papers.ganimation`).

The generator is fed **relative** AUs, the change wanted (Eq. 1), instead of GANimation's absolute target
AUs, so that a zero entry means "leave this muscle alone" and a user edits one AU without knowing the
others; continuous edits interpolate between two expressions (Eq. 2). The generator is a U-Net whose skip
connections pass through multi-scale feature fusion (MSF) modules conditioned on v_rel (Fig. 3); the
critic is GANimation's, with its AU-regression head. Losses: WGAN-GP (Eq. 3-4), AU regression of real
faces and of edits (Eq. 5-6), self-reconstruction with v_rel = 0 and the cycle (Eq. 7), total variation;
totals Eq. 8-9. "GANimation w/ v_rel" is GANimation's own iteration with its generator fed v_rel
(:func:`.config.from_ganimation`).

Modules: :mod:`.config` (settings, the series' configs), :mod:`.model` (v_rel, Eq. 2, the MSF module, the
generator), :mod:`.losses` (one function per equation), :mod:`.train` (batches, one iteration, the editor,
training and loading), :mod:`.evaluation` (Table 3's reconstruction; edits against SynthFaces' re-renders),
:mod:`.interactive` (the AU-slider editor of 04_results and its static figure).

The paper -> code
=================

==============  ===========================================================================================
paper           code
==============  ===========================================================================================
Eq. 1           :func:`.model.relative_aus`; the condition of an edit :func:`.model.generator_condition`
                (``RelativeAUConfig.condition``: "relative" or "absolute", the "w/o v_rel" ablation)
Eq. 2           :func:`.model.interpolated_aus`
Sec. 3.2        :class:`.model.UNetMSF` (the generator, Fig. 3 left); the critic
                :class:`faceedit_nb.nets.ganimation.Discriminator` (GANimation's, as the paper says)
Sec. 3.3        :class:`.model.MSFModule` (Fig. 3 right); ``RelativeAUConfig.k_msf`` (0..3) of them,
                :func:`.model.msf_levels`
Eq. 3           :func:`.losses.adversarial_loss_d`, :func:`.losses.gradient_penalty_loss`
Eq. 4           :func:`.losses.adversarial_loss_g`
Eq. 5           :func:`.losses.condition_loss_d`
Eq. 6           :func:`.losses.condition_loss_g`
Eq. 7           :func:`.losses.self_reconstruction_loss`, :func:`.losses.cycle_reconstruction_loss`,
                :func:`.losses.reconstruction_loss`
L_tv            :func:`.losses.total_variation_loss`
Eq. 8           :func:`.losses.discriminator_loss` (the critic step of :func:`.train.relative_au_step`)
Eq. 9           :func:`.losses.generator_loss` (its generator step)
Sec. 4.1        :class:`.config.RelativeAUConfig` defaults (λ1 = λ2 = 150, λ3 = 30, λ4 = 5e-6, 1 G step per
                4 D steps, Adam 1e-4 (0.5, 0.999), decay to 1e-5); ``PAPER_STATES`` / ``CODE_STATES`` /
                ``OUR_CHOICES`` say where each value comes from
Sec. 4.2        IS, ACD, ED: :func:`faceedit_nb.metrics.evaluate` (protocol ``"aus"``: 7 random target AU
                vectors per test face, as the paper's 3,234 x 7 pairs; metrics ``is_own``, ``acd``, ``ed``)
Table 1         ``notebooks/relative_au/03_ablations`` (the MSF rows: :data:`.config.MSF_ROWS`) and
                ``04_results`` (every row: :func:`.config.series_configs` + the cached GANimation,
                :func:`.config.ganimation_config`)
Table 2         human study: not reproducible here (04_results says why)
Table 3         reconstruction L1 / PSNR / SSIM of G(x, 0) (ours) and of G(x, v_src) (absolute models):
                03_ablations
Figure 1, 8     interpolation (Eq. 2): 04_results
Figure 2, 3     01_architecture (v_rel, the MSF module, the shapes, parameter counts per k_MSF)
Figure 4, 5     single- and multi-AU edits: 04_results
Figure 6        comparison with GANimation: 04_results
Figure 7        hard cases (occluded, flat-style "painting", a real photo from scikit-image): 04_results
Figure 9        conditional-loss curves of critic and generator per k_MSF (``D/cond``, ``G/cond``): 03_ablations
beyond paper    :func:`.evaluation.relative_edit_errors` (each single-AU relative edit against the true
                re-render: image L1, AU error, share of the change inside the AU's true region);
                :func:`.interactive.au_slider_editor` (17 sliders) and :func:`.interactive.slider_figure`
==============  ===========================================================================================
"""
from .config import (CODE_STATES, CONDITIONS, DATASETS, GENERATORS, MSF_ROWS, OUR_CHOICES, PAPER_STATES, SERIES,
                     RelativeAUConfig, check_evaluation_data, config_for, from_ganimation, ganimation_config,
                     series_configs)
from .losses import (adversarial_loss_d, adversarial_loss_g, condition_loss_d, condition_loss_g,
                     cycle_reconstruction_loss, discriminator_loss, generator_loss, gradient_penalty_loss,
                     reconstruction_loss, self_reconstruction_loss, total_variation_loss)
from .model import (MSF_LEVELS, MSFModule, UNetMSF, build_generator, generator_condition,
                    interpolated_aus, msf_levels, relative_aus)
from .train import (OpenFaceBatches, RelativeAUBatches, build_relative_au, edit_relative, load_relative_au,
                    load_series, relative_au_editor, relative_au_optimizers, relative_au_schedule, relative_au_step,
                    seconds_per_iteration, train_relative_au)

from .evaluation import (REGION_THRESHOLD, hard_cases, inception_score_difference, photo_face, locality_share, reconstruction_errors, relative_edit_errors,
                         single_au_edits, true_region)
from .interactive import au_slider_editor, slider_figure, v_rel_from

from . import config, evaluation, interactive, losses, model, train  # noqa: E402

__all__ = [name for mod in (config, losses, model, train, evaluation, interactive) for name in mod.__all__]
