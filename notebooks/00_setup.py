# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 0 — Setup and a tour of the course
#
# **What you'll do:** check your environment, meet the course's data set (AV-Digits: the same digit as a
# handwritten image, a spoken word and a caption), browse it with a widget, and measure a first table: how well
# each modality predicts the digit alone, and how well they do together.
#
# **What you'll learn:** what `mmlab` offers, how each modality looks as tensors, and why a number is only
# worth something with its data, metric, baseline and seeds.
#
# **What you'll need:** Python and a little PyTorch. Everything runs on a laptop CPU in under a minute; a GPU
# is used when present. **Time:** ~15 minutes.
#
# ## The course
# Each lesson starts from a *tempting recipe* that circulates in blog posts, shows measurably where it fails,
# then builds the method that works and proves it with numbers you can re-run:
#
# | # | lesson (click to open) | what you will see happen |
# |---|---|---|
# | 1 | [modality alignment](01_alignment.ipynb) | naive pairing of out-of-step sequences collapses; DTW and cross-modal attention recover it |
# | 2 | [efficient fusion](02_fusion.ipynb) | tensor fusion's cost explodes; low-rank fusion keeps the interactions for a fraction |
# | 3 | [missing modalities](03_missing_modalities.ipynb) | a model trained on complete data collapses when a modality goes missing; the fixes |
# | 4 | [imbalance](04_imbalance.ipynb) | a dominant modality starves the weak one; gradient modulation and loss balancing |
# | 5 | [deployment](05_deployment.ipynb) | distillation, real pruning, quantization, export, batching, caching — measured |
# | 6 | [pitfalls](06_pitfalls.ipynb) | bigger is not better on small data; dirty pairs and labels, found and down-weighted |
# | 7 | [contrastive foundation model](07_contrastive.ipynb) | CLIP-style pretraining, zero-shot classification, retrieval |

# %%
# Colab only: fetch the course, install mmlab + what Colab lacks (not torch). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL = "https://github.com/mmlab-course/mmlab"
    if not os.path.isdir("/content/mmlab"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/mmlab"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/mmlab[colab]"], check=True)
    os.chdir("/content/mmlab/notebooks")

# %% [markdown]
# ## 1. Environment check
# `mmlab.get_device()` picks CUDA, then Apple MPS, then the CPU; nothing in the course calls `.cuda()`, so
# every cell runs unchanged on any of them. Mixed precision (AMP) is switched on by `mmlab` only on CUDA.

# %%
import platform

import matplotlib
import numpy as np
import torch
from ipywidgets import FloatSlider, IntSlider, interact

import mmlab
from mmlab import get_device, seed_everything

device = get_device()
print(f"python {platform.python_version()} · torch {torch.__version__} · numpy {np.__version__}")
print(f"matplotlib {matplotlib.__version__} · mmlab {mmlab.__version__}")
print(f"device: {device} · CPU threads: {torch.get_num_threads()}")
assert device.type in ("cpu", "cuda", "mps")

# %% [markdown]
# ## 2. The course data: AV-Digits
# AV-Digits is built the way AV-MNIST is: images and spoken clips of the same digit are paired by label.
# * **image** — an 8×8 handwritten digit from scikit-learn's bundled `load_digits` (pixels in [0, 1]);
# * **audio** — the digit's name spoken by one of 8 `espeak-ng` voices at several speeds and pitches, as a
#   log-mel spectrogram (32 mel bands × 10 ms frames); *test clips come from 2 voices never heard in training*;
# * **text** — a caption from templates ("a handwritten seven", "digit: 7", sometimes misspelled).
#
# The data ship with the repository (`data/avdigits_audio.npz`, 2 MB); nothing is downloaded.

# %%
from mmlab.data import load_audio_clips, load_avdigits
from mmlab.viz import plot_spectrogram, show_images

train, val, test = (load_avdigits(s) for s in ("train", "val", "test"))
clips = load_audio_clips()
print(f"train {len(train)} · val {len(val)} · test {len(test)} items")
print(f"image {tuple(train.image.shape)} · audio {tuple(train.audio.shape)} · labels {tuple(train.label.shape)}")
print("train voices:", sorted({str(clips['voice_names'][v]) for v in train.voice.tolist()}))
print("test voices: ", sorted({str(clips['voice_names'][v]) for v in test.voice.tolist()}))
assert not set(train.voice.tolist()) & set(test.voice.tolist()), "test speakers are held out"

# %%
show_images(train.image[:20], labels=[f"{int(y)}: {t[:12]}" for y, t in zip(train.label[:20], train.text[:20])],
            title="AV-Digits images with their captions")

# %% [markdown]
# Each clip becomes a log-mel spectrogram: time on the x axis, mel bands (low to high pitch) on the y axis.
# Listen to the same word from two voices and look at how different they are.

# %%
from IPython.display import Audio, display

from mmlab.viz import new_figure

fig, axes = new_figure(1, 2, size=(10, 3))
for ax, i in zip(axes, (0, 1)):
    n = int(test.audio_len[i])
    plot_spectrogram(test.audio[i, :n], ax=ax, title=f"test[{i}]: “{test.text[i]}”")
display(fig)
sr = int(clips["sample_rate"])
for i in (0, 1):
    c = int(test.clip[i])
    display(Audio(clips["wave"][c, : clips["length"][c]] / 32768, rate=sr))

# %% [markdown]
# ## 3. Browse the data and turn the noise knobs
# Every modality has a noise knob, so each lesson can set how hard each modality is:
# `image_noise` (Gaussian pixel noise, std), `audio_noise` (white noise relative to the clip's loudness,
# 1/SNR) and `text_noise` (probability that a caption does not name the digit). Move the sliders.

# %%
# NBVAL_IGNORE_OUTPUT
from mmlab.lessons.tour import avdigits_sample_figure

wide = {"description_width": "initial"}  # room for each control's full description
interact(
    avdigits_sample_figure,
    index=IntSlider(0, 0, len(train) - 1, description="index", style=wide),
    image_noise=FloatSlider(value=0.0, min=0, max=1, step=0.1, description="image noise", style=wide),
    audio_noise=FloatSlider(value=0.0, min=0, max=2, step=0.25, description="audio noise", style=wide),
    text_noise=FloatSlider(value=0.0, min=0, max=1, step=0.1, description="text noise", style=wide),
    split=["train", "val", "test"],
);

# %% [markdown]
# ## 4. A first measured table: one modality at a time, then all three
# With clean captions, text alone is perfect — the caption *names* the digit. That is a shortcut, and
# real data sets have them too. To make every modality informative but imperfect we set
# `image_noise=0.4` and `text_noise=0.6`; audio is hard on its own because test voices are new.
#
# The models are small: an MLP on pixels, a 1-D CNN over spectrogram frames (padded frames masked out), a bag of
# word embeddings for captions; the joint model concatenates the three features before one linear layer.
# Every number below is the mean over 3 seeds, with its standard deviation — a single run can mislead.

# %%
from mmlab.models import AudioCNN, MLPEncoder, MultimodalClassifier, TextBagEncoder
from mmlab.text import WordTokenizer
from mmlab.train import evaluate, fit, make_loader

knobs = dict(image_noise=0.4, text_noise=0.6)
train_n, test_n = load_avdigits("train", **knobs), load_avdigits("test", **knobs)
tokenizer = WordTokenizer(train_n.text)
ids_train, _ = tokenizer(train_n.text, max_len=8)
ids_test, _ = tokenizer(test_n.text, max_len=8)


def forward(model, batch):
    """Route the batch's tensors to the model's modalities, in the model's order."""
    image, audio, audio_len, ids, y = batch
    inputs = {"image": image, "audio": (audio, audio_len), "text": ids}
    return model(*[inputs[m] for m in model.modalities]), y


def run(modalities, seed):
    seed_everything(seed)
    encoders = {"image": MLPEncoder(64, 64), "audio": AudioCNN(32, 64), "text": TextBagEncoder(len(tokenizer), 64)}
    model = MultimodalClassifier({m: encoders[m] for m in modalities}, num_classes=10)
    loader = make_loader(train_n.image, train_n.audio, train_n.audio_len, ids_train, train_n.label,
                         batch_size=64, shuffle=True, seed=seed)
    fit(model, loader, epochs=15, lr=3e-3, forward_fn=forward, device=device, desc="+".join(modalities))
    test_loader = make_loader(test_n.image, test_n.audio, test_n.audio_len, ids_test, test_n.label, batch_size=256)
    return evaluate(model, test_loader, forward_fn=forward)["accuracy"]


setups = {"image only": ["image"], "audio only": ["audio"], "text only": ["text"],
          "joint (concat)": ["image", "audio", "text"]}
seeds = [0, 1, 2]
acc = {name: np.array([run(mods, s) for s in seeds]) for name, mods in setups.items()}
for name, a in acc.items():
    print(f"{name:15s} test accuracy {100 * a.mean():5.1f} ± {100 * a.std():.1f} %   (seeds: {np.round(100 * a, 1)})")

# %%
from mmlab.viz import bar_chart

bar_chart({k: v.mean() for k, v in acc.items()}, errors={k: v.std() for k, v in acc.items()},
          ylabel="test accuracy (fraction)", title="AV-Digits: each modality alone vs joint (3 seeds)",
          ref=0.1, ref_label="chance (10 classes)")

# %% [markdown]
# **What the seeds show** (checked below, so this notebook fails if it stops being true): every modality alone
# is far above chance (10%) but imperfect, and the joint model beats the best single modality on average.

# %%
means = {k: v.mean() for k, v in acc.items()}
best_single = max(means[k] for k in ("image only", "audio only", "text only"))
assert all(means[k] > 0.3 for k in ("image only", "audio only", "text only")), means
assert means["joint (concat)"] > best_single + 0.03, means
print(f"joint beats the best single modality by {100 * (means['joint (concat)'] - best_single):.1f} points")

# %% [markdown]
# ## 5. What `mmlab` offers
# Two layers. The **methods** are small modules, one concept each, in the order data flows:
# data → encoders → align / fuse / handle missing / balance → train → evaluate → deploy → plot.
# The **lessons** (`mmlab.lessons.*`) hold each notebook's experiment: drivers, cached runs and widget figures.
# A lesson imports methods; no method imports a lesson. Each module's first docstring line:

# %%
import importlib
import pkgutil

for info in sorted(pkgutil.walk_packages(mmlab.__path__, "mmlab."), key=lambda m: m.name):
    doc = (importlib.import_module(info.name).__doc__ or "").strip().splitlines()
    print(f"{info.name:28s} {doc[0] if doc else ''}")

# %% [markdown]
# ## Exercises
# 1. Set `knobs = dict()` (no noise) and re-run section 4. Which modality becomes a shortcut, and what happens
#    to the joint model's margin over it?
# 2. Train the audio model on `load_avdigits("val")` voices and test on `"val"`: how much of the audio gap is
#    caused by new speakers?
# 3. Replace `MLPEncoder` by `mmlab.models.ImageCNN` for images. Does a CNN help on 8×8 pixels?
#
# ## Summary
# * The course runs on your CPU, offline, in minutes; `mmlab.get_device()` uses a GPU when there is one.
# * AV-Digits gives three modalities of the same digit with a noise knob each; test speakers are unseen.
# * Numbers in this course come with their data, metric, baseline and seeds — and an assertion that fails if
#   they stop holding. Next: **Lesson 1 — modality alignment**.
