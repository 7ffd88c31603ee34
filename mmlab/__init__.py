"""mmlab: the small PyTorch package behind the practical multimodal ML course.

Modules, in the order data flows: ``data`` (AV-Digits, easy-VQA), ``audio`` (log-mel, MFCC), ``text``
(tokenizer, pretrained encoder with offline fallback), ``models`` (encoders), ``train`` (loop, evaluation),
``viz`` (plots and widget figures); the lessons add ``align``, ``fusion``, ``missing``, ``balance``,
``deploy``, ``quality`` and ``contrastive``.
"""

from .runtime import autocast, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "autocast", "__version__"]
