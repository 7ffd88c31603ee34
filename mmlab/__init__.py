"""mmlab: the small PyTorch package behind the practical multimodal ML course.

Two layers, and data flows one way through them:
data → models → align / fusion / missing / balance / quality / contrastive → train → evaluate → deploy → viz
→ lessons → notebooks. A method module never imports a lesson module.

Methods (one concept per module):

- ``runtime`` device (CUDA → MPS → CPU), seeding (``seeded`` leaves the caller's RNG alone), AMP;
  ``checks`` input checks that name the argument and the expected shape
- ``data`` AV-Digits, easy-VQA, alignment episodes, grounding canvases (audio is time first:
  ``(N, frames, features)``); ``audio`` log-mel and MFCC in numpy; ``text`` tokenizer and pretrained encoder
  with its offline fallback
- ``models`` ``mlp`` (the one MLP builder), an encoder per modality, ``MultimodalClassifier``
- ``train`` ``fit`` (the one training loop, with hooks), ``make_loader`` (the one loader), ``eval_mode``,
  ``predict``, ``evaluate``, ``History``
- ``align`` (lesson 1), ``fusion`` (2), ``missing`` (3), ``balance`` (4), ``deploy`` (5: ``distillation``,
  ``compression``, ``export``, ``serving``, ``timing``), ``quality`` (6), ``contrastive`` (7)
- ``viz`` generic plots; ``colab`` the Colab set-up cell; ``widgets`` the lessons' ``interact`` (figures as
  Output-widget state, so notebook executors do not stall)

Lessons: ``mmlab.lessons.<lesson>`` (``tour``, ``alignment``, ``fusion``, ``missing``, ``imbalance``,
``deployment``, ``pitfalls``, ``contrastive``) hold each notebook's experiment drivers, cached runs, data
recipes and widget figures.
"""

from .runtime import autocast, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "autocast", "__version__"]
