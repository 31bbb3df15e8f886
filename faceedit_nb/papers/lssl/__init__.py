"""LSSL: Bozorgtabar et al., "Learn to Synthesize and Synthesize to Learn" (lssl.txt; synthesis code public at
CreativePapers/Learn-to-Synthesize-and-Synthesize-to-Learn, Python 2), as an extension of StarGAN
(:mod:`faceedit_nb.papers.stargan`).

**Learn to synthesize**: one encoder-decoder translates a face and its landmark heat map (the side image s) to
any class of one attribute (expression, yaw, lighting) against a WGAN-GP critic of (image, side image) pairs
with an attribute classifier; an identity L1, a parsing loss through a frozen three-component parser and a
bidirectional loss (image, side-image and latent cycle) keep the person. **Synthesize to learn**: the edits
train an expression recogniser (augmentation), are read by a recogniser trained on real faces, and turn
simulated frontal faces into realistic ones for recognising faces seen from the side (pose normalisation).

Modules: :mod:`.config` (settings, the series' configs, the paper's tables), :mod:`.model` (heat maps, G_enc,
G_dec, the critic, the parser), :mod:`.losses` (one function per equation), :mod:`.data` (faces with an
attribute's classes, pose pairs, true edits, RaFD with landmarks), :mod:`.train` (the parser, one iteration,
the editor, training and loading), :mod:`.evaluation` (the recognition experiments).

The paper -> code
=================

==============  ===========================================================================================
paper           code
==============  ===========================================================================================
Sec. 3.1        G = G_dec(G_enc(x, s), y): :class:`.model.Encoder`, :class:`.model.Decoder` (sub-pixel),
                :class:`.model.LSSLGenerator`; s: :func:`.model.landmark_heatmap` (Sec. 5.3)
Fig. 5, 4.1     :func:`.model.build_critic` (PatchGAN + classifier on pairs), :class:`.model.DepthwiseUNet`
                (P: lips, eyes, skin; :func:`.train.load_parser`)
Eq. 1           :func:`.losses.adversarial_loss_d`, :func:`.losses.adversarial_loss_g`,
                :func:`.losses.gradient_penalty_loss`
Eq. 2, 3        :func:`.losses.classification_loss_real`, :func:`.losses.classification_loss_fake`
Eq. 4           :func:`.losses.identity_loss`
Eq. 5           :func:`.losses.parsing_loss`
Eq. 6           :func:`.losses.bidirectional_loss`
Eq. 7           :func:`.losses.generator_loss`, :func:`.losses.discriminator_loss`; one iteration:
                :func:`.train.lssl_step`
Sec. 4          :class:`.config.LSSLConfig` defaults (λ_bi = λ_id = λ_p = λ_gp = 10, λ_cls = 1, Adam 1e-4
                (0.5, 0.999), batch 8, 5 critic steps, decay after 100 epochs); :data:`.config.PAPER_STATES` /
                :data:`.config.OUR_CHOICES` say where each value comes from
Sec. 3.2,       pose normalisation: ``LSSLConfig(task="pose_normalisation")``, :func:`.data.pose_pairs`,
Fig. 3b         :func:`.train.refine`; SimGAN's refiner: :func:`.config.pose_configs`
Fig. 1, 12      expression edits: ``notebooks/lssl/02_training``, ``04_results``
Fig. 2          yaw and lighting models (:func:`.config.attribute_configs`): 02, 04
Fig. 4          P's parsing maps: ``01_architecture``
Fig. 6          the comparison with IcGAN and CycleGAN: not reproducible here (neither is in the project;
                StarGAN stands in as the paper's Tables do)
Fig. 7          pose-normalised edits of LSSL and SimGAN's refiner: 04
Fig. 8, Table 1 the augmentation curve and the component rows: :func:`.evaluation.augmentation_curve`,
                ``03_ablations`` (the hand-crafted rows HOG 3D ... DTAGN: not reproducible here, no code)
Fig. 9          MUG subjects 1 and 20: not reproducible here (MUG is licensed per user)
Table 2         a recogniser trained on real faces reads each method's edits: the expression oracle through
                :func:`faceedit_nb.metrics.evaluate` (EEA), 04 (CycleGAN and IcGAN: not in the project)
Table 3         :func:`.evaluation.pose_recognition`, 04 (Lai and Lai, Zhang et al., CycleGAN: no code)
Fig. 10         the encoder's hidden units: 02 (beside the latent's spread across faces), 04
Fig. 11         the critic's losses: 02
mode collapse   Sec. 3.1's claim for Eq. 6: :func:`.evaluation.diversity`, 03
beyond paper    every edit against SynthFaces' true re-render (:func:`.evaluation.edit_error`), the real
                frontal ceiling in Table 3
==============  ===========================================================================================
"""
from .config import *  # noqa: F401,F403  (every name of each module's __all__)
from .data import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .train import *  # noqa: F401,F403

from . import config, data, evaluation, losses, model, train  # noqa: E402

__all__ = [name for mod in (config, data, losses, model, train, evaluation) for name in mod.__all__]
