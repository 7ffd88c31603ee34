# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,jupyter,-all
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
# **What you'll need:** Python and a little PyTorch. Everything runs on a laptop CPU; a GPU is used when
# present. **Time:** ~30 minutes (~10 of them for the exercises).
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
# | 8 | [scale-out](08_scale_out.ipynb) | one training across processes with `torch.distributed`; why contrastive losses must gather |
# | 9 | [capstone](09_capstone.ipynb) | every problem at once: the naive pipeline vs the fixed one, each fix measured, deployed |

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
from ipywidgets import FloatSlider, IntSlider
from mmlab.widgets import interact

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
# * **audio** — the digit's name spoken by one of 8 `espeak-ng` voices at 4 speed/pitch settings, as a
#   log-mel spectrogram (32 mel bands × 10 ms frames);
# * **text** — a caption from templates ("a handwritten seven", "digit: 7", sometimes misspelled).
#
# Three splits, and what each one means (more in [How this course measures](#How-this-course-measures)):
# **train** (what models learn from); **val** = seen voices, unseen recordings and unseen images (every choice
# is made here); **test** = 2 voices never heard in training, and unseen images (reported once, at the end).
# The clips ship inside the `mmlab` package (`mmlab/assets/avdigits_audio.npz`); nothing is downloaded.

# %%
from mmlab.data import load_audio_clips, load_avdigits
from mmlab.viz import plot_spectrogram, show_images

train, val, test = (load_avdigits(s) for s in ("train", "val", "test"))
clips = load_audio_clips()
print(f"train {len(train)} · val {len(val)} · test {len(test)} items")
print(f"image {tuple(train.image.shape)} · audio {tuple(train.audio.shape)} · labels {tuple(train.label.shape)}")
print("train voices:", sorted({str(clips["voice_names"][v]) for v in train.voice.tolist()}))
print("test voices: ", sorted({str(clips["voice_names"][v]) for v in test.voice.tolist()}))
print(
    f"{len(clips['voice_names'])} voices, {len(set(zip(clips['speed'].tolist(), clips['pitch'].tolist())))} "
    f"speed/pitch settings, {clips['wave'].shape[0]} clips, audio {train.audio.shape[-1]} mel bands"
)
assert len(clips["voice_names"]) == 8 and len(set(test.voice.tolist())) == 2 and train.audio.shape[-1] == 32
assert not set(train.voice.tolist()) & set(test.voice.tolist()), "test speakers are held out"
assert set(val.voice.tolist()) <= set(train.voice.tolist()), "val speakers are seen in training..."
assert not set(val.clip.tolist()) & set(train.clip.tolist()), "...but val recordings are not"

# %%
show_images(
    train.image[:20],
    labels=[f"{int(y)}: {t[:12]}" for y, t in zip(train.label[:20], train.text[:20])],
    title="AV-Digits images with their captions",
)

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
_ = interact(
    avdigits_sample_figure,
    index=IntSlider(0, 0, len(train) - 1, description="index", style=wide),
    image_noise=FloatSlider(value=0.0, min=0, max=1, step=0.1, description="image noise", style=wide),
    audio_noise=FloatSlider(value=0.0, min=0, max=2, step=0.25, description="audio noise", style=wide),
    text_noise=FloatSlider(value=0.0, min=0, max=1, step=0.1, description="text noise", style=wide),
    split=["train", "val", "test"],
)
# %% [markdown]
# ## 4. A first measured table: one modality at a time, then all three
# With clean captions, text alone is perfect — the caption *names* the digit. That is a shortcut, and
# real data sets have them too. To make every modality informative but imperfect we set
# `image_noise=0.4` and `text_noise=0.6` (set once, by design, before any model was trained); audio is hard
# on its own because test voices are new.
#
# The models are small: an MLP on pixels, a 1-D CNN over spectrogram frames (padded frames masked out), a bag of
# word embeddings for captions; the joint model concatenates the three features before one linear layer.
# The course's protocol, in miniature: each model **trains on train** for up to 15 epochs; after every epoch
# `KeepBest` scores it on **val** and keeps the best epoch's weights (the epoch is *chosen on val*); the
# best single modality is also chosen on val; only then is **test** read, once. Every number is over 5 seeds.

# %%
from mmlab.lessons.tour import KeepBest
from mmlab.models import AudioCNN, MLPEncoder, MultimodalClassifier, TextBagEncoder
from mmlab.stats import format_spread, paired_bootstrap, sign_count
from mmlab.text import WordTokenizer
from mmlab.train import evaluate, fit, make_loader

knobs = dict(image_noise=0.4, text_noise=0.6)
data = {split: load_avdigits(split, **knobs) for split in ("train", "val", "test")}
tokenizer = WordTokenizer(data["train"].text)  # the vocabulary comes from the training captions only


def loader(split, **kwargs):
    d = data[split]
    ids, _ = tokenizer(d.text, max_len=8)
    return make_loader(d.image, d.audio, d.audio_len, ids, d.label, **kwargs)


def forward(model, batch):
    """Route the batch's tensors to the model's modalities, in the model's order."""
    image, audio, audio_len, ids, y = batch
    inputs = {"image": image, "audio": (audio, audio_len), "text": ids}
    return model(*[inputs[m] for m in model.modalities]), y


val_loader, test_loader = loader("val", batch_size=512), loader("test", batch_size=512)


def run(modalities, seed):
    """Train on train; choose the epoch on val (KeepBest); return the chosen model and its val accuracy."""
    seed_everything(seed)
    encoders = {
        "image": MLPEncoder(64, 64),
        "audio": AudioCNN(32, 64, width=32),
        "text": TextBagEncoder(len(tokenizer), 64),
    }
    model = MultimodalClassifier({m: encoders[m] for m in modalities}, num_classes=10)
    best = KeepBest(lambda m: evaluate(m, val_loader, forward_fn=forward)["accuracy"], name="val_acc")
    fit(
        model,
        loader("train", batch_size=64, shuffle=True, seed=seed),
        epochs=15,
        lr=3e-3,
        forward_fn=forward,
        after_epoch=best,
        device=device,
        desc=f"{'+'.join(modalities)} seed {seed}",
    )
    return best.restore(model), best


setups = {
    "image only": ["image"],
    "audio only": ["audio"],
    "text only": ["text"],
    "joint (concat)": ["image", "audio", "text"],
}
seeds = [0, 1, 2, 3, 4]
runs = {name: [run(mods, s) for s in seeds] for name, mods in setups.items()}

# %% [markdown]
# **The choices, on val only.** This cell sees validation accuracies and nothing else: the epoch of each run,
# and which single modality is the best.

# %%
val_acc = {name: np.array([best.best_score for _, best in rs]) for name, rs in runs.items()}
print("split: VAL (seen voices, unseen recordings and images) — where choices are made")
for name, a in val_acc.items():
    print(f"{name:15s} {format_spread(a, 100, ' %')}   epochs chosen: {[best.best_epoch for _, best in runs[name]]}")
singles = ["image only", "audio only", "text only"]
best_single = max(singles, key=lambda k: val_acc[k].mean())
print(f"best single modality on val: {best_single}")

# %% [markdown]
# **The report, on test, read once.** Nothing below changes a model or a choice.

# %%
acc = {
    name: np.array([evaluate(m, test_loader, forward_fn=forward)["accuracy"] for m, _ in rs])
    for name, rs in runs.items()
}
print("split: TEST (unseen voices, unseen images) — reported once, after the last choice")
for name, a in acc.items():
    print(f"{name:15s} {format_spread(a, 100, ' %')}")
for other in singles:
    print(f"joint − {other:11s} {paired_bootstrap(acc['joint (concat)'], acc[other]).format(100, ' pts')}")

# %%
from mmlab.viz import bar_chart

bar_chart(
    {k: v.mean() for k, v in acc.items()},
    errors={k: v.std(ddof=1) for k, v in acc.items()},
    ylabel="test accuracy (fraction)",
    title=f"AV-Digits test split: mean ± std over {len(seeds)} seeds",
    ref=0.1,
    ref_label="chance (10 classes)",
)

# %% [markdown]
# **What the seeds show** (checked below with stated margins, so this notebook fails if it stops being true):
#
# * every modality alone is far above chance: more than 25 points above 10% in every seed;
# * and imperfect: below 95% in every seed;
# * the joint model beats every single modality — the one chosen on val and each of the others — with a 95%
#   paired interval whose lower bound is above a 5-point margin;
# * val chose audio as the best single modality — on voices it has heard. On new voices audio alone loses more
#   than 10 points in every seed (val − test of the same models): the cost of a new voice, which exercise 3
#   compares with the joint model's.

# %%
chance, margin = 0.1, 0.05
for k in singles:
    assert sign_count(acc[k], np.full(len(seeds), chance), margin=0.25) == len(seeds), (k, acc[k])
    assert (acc[k] < 0.95).all(), (k, acc[k])
intervals = {k: paired_bootstrap(acc["joint (concat)"], acc[k]) for k in singles}
assert all(ci.low > margin for ci in intervals.values()), intervals
assert best_single == "audio only" and sign_count(val_acc["audio only"], acc["audio only"], margin=0.10) == len(seeds)
print(
    f"smallest lower bound: joint − {min(intervals, key=lambda k: intervals[k].low)} "
    f"{min(ci.low for ci in intervals.values()) * 100:+.1f} pts > {margin * 100:.0f}-point margin"
)

# %% [markdown]
# ## How this course measures
# Every lesson makes its numbers the way the table above was made, and links here.
#
# **Three splits, three jobs.** **train** is what a model learns from. **val** — for AV-Digits, *seen voices,
# unseen recordings and unseen images* — is where **every choice** is made: epochs, learning rates, ranks,
# thresholds, which method is "best". **test** — *unseen voices* — is **reported once, after the last choice**.
# A choice made on test numbers turns the test split into a second val split and its numbers into optimistic
# ones. So a val–test gap in this course measures one thing: the cost of a new voice (not of a new recording).
#
# **Seeds.** One training run is one draw: initialisation, batch order and sampled data change with the seed,
# and two methods can swap places from one seed to the next. So we train several seeds (5 where a claim rests on
# a difference of a few points) and print `mmlab.stats.format_spread`: mean ± sample standard deviation
# (ddof = 1, Bessel's correction), min–max and n.
#
# **Confidence intervals.** To say A beats B we look at the *paired* differences $d_s = a_s - b_s$ (same seed,
# same data, so shared luck cancels) and resample them with replacement: `paired_bootstrap(a, b)` gives the mean
# difference and a 95% percentile interval. With 5 seeds that interval is **optimistic**: it can never be wider
# than the range of the differences seen, so it says "stable over these seeds", not "proven". Where test items are
# the natural unit (one model, many items), the same function runs over items.
#
# **Sign counts with a margin.** `sign_count(a, b, margin)` counts the seeds where A is ahead of B by more than
# the margin — a claim like "in 5 of 5 seeds, by more than 2 points" is plain to read and hard to fake.
#
# **What an assert certifies.** An `assert` in a lesson certifies that *the effect reappears on this machine,
# with these seeds, within the stated margin*. It is not a universal truth about the methods: another data
# set, model size or set of seeds can change it — and then the notebook fails loudly instead of telling a
# story that stopped being true. Prose that says "about X" is checked from both sides.
#
# A live example on the table above: the joint model against image alone, over the 5 seeds.

# %%
a, b = acc["joint (concat)"], acc["image only"]
ci = paired_bootstrap(a, b)
print(f"joint (test):      {format_spread(a, 100, ' %')}")
print(f"image only (test): {format_spread(b, 100, ' %')}")
print(f"joint − image:     {ci.format(100, ' pts')}")
print(f"seeds where joint leads by more than 5 points: {sign_count(a, b, margin=0.05)} of {len(a)}")
d = a - b
assert ci.low >= d.min() - 1e-12 and ci.high <= d.max() + 1e-12  # never wider than the differences seen
assert ci.low > 0.05 and sign_count(a, b, margin=0.05) == len(a)

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
# Code exercises are checked on the spot; the solutions are in collapsed cells (click to reveal in JupyterLab;
# in Colab, 'Show code'). Try first.
#
# **Exercise 1 — the spread over seeds.** Every "± s" this course prints (`format_spread`, the error bars of the
# chart above) is the *sample* standard deviation over seeds. Write `std_over_seeds(acc)`: for a table of
# accuracies with one row per seed and one column per setup, return one standard deviation per setup. Why it
# matters: with 5 seeds, dividing by n instead of n − 1 shrinks every spread by √(4/5) ≈ 0.89, and the
# method looks more stable than it is. *Hint:* reduce over axis 0 (the seeds), and divide the sum of squared
# deviations by `n_seeds - 1`.


# %%
# ✏️ Exercise 1: your code here
def std_over_seeds(acc):
    """The sample standard deviation over seeds, one value per setup.

    acc: array (n_seeds, n_setups), e.g. test accuracies; row i = seed i, column j = setup j.
    Returns an array (n_setups,): s_j = sqrt( Σ_i (acc[i, j] - mean_j)² / (n_seeds - 1) ).
    """
    raise NotImplementedError


# %%
from mmlab.exercises import check_std_over_seeds

check_std_over_seeds(std_over_seeds)


# %% tags=["solution"] jupyter={"source_hidden": true}
# @title Solution { display-mode: "form" }
def std_over_seeds(acc):
    """The sample standard deviation over seeds (ddof = 1), one value per setup: (n_seeds, n_setups) -> (n_setups,)."""
    n_seeds = acc.shape[0]
    mean = acc.mean(axis=0)  # one mean per setup: average down each column, i.e. over the seeds
    squared_deviation = (acc - mean) ** 2  # broadcasting subtracts column j's mean from every entry of column j
    # Bessel's correction: the deviations are measured from the sample mean, which was fitted to these same n
    # values and so sits closer to them than the true mean does; dividing by n - 1 instead of n makes the
    # variance unbiased (see "Check your understanding" below). Then the square root turns it back into a std.
    return np.sqrt(squared_deviation.sum(axis=0) / (n_seeds - 1))


check_std_over_seeds(std_over_seeds)

# %% [markdown]
# **Exercise 2 — without noise.** Set `knobs = dict()` (no noise) and re-run section 4. Which modality becomes a
# shortcut, and what happens to the joint model's margin over it?
#
# <details><summary>Answer</summary>
#
# Text. With `text_noise=0` every caption names its digit (section 4: "with clean captions, text alone is
# perfect"), so the text model only has to look the word up. This notebook does not measure the noiseless run,
# so run it and look at two numbers: text only's test accuracy (`format_spread(acc["text only"], 100, " %")`)
# and the paired interval `paired_bootstrap(acc["joint (concat)"], acc["text only"])`. Where a single modality
# already solves the task, the joint model has little left to gain: if that interval straddles 0, the joint model
# is no better than the shortcut, and the other two modalities add nothing you could measure. That is why the
# lesson set the noise knobs (before training anything) so that no modality is a lookup table.
#
# </details>
#
# **Exercise 3 — the cost of a new voice.** The audio-only models above were trained on train, their epochs
# chosen on val, and reported on test. Evaluate the same models on val (seen voices, unseen recordings) and on
# test (unseen voices) and compute, per seed, val − test: that gap is the cost of a new voice. Do the same for
# the joint model and compare the two gaps with `paired_bootstrap`. (Nothing here is chosen on test.)
#
# <details><summary>Answer</summary>
#
# Evaluate the models `run` returned (each already restored to the epoch val chose) on val, seed by seed; the
# result equals `val_acc` from above, since `KeepBest` scored exactly these weights on the same split:
#
# ```python
# two = ("audio only", "joint (concat)")
# on_val = {k: np.array([evaluate(m, val_loader, forward_fn=forward)["accuracy"] for m, _ in runs[k]]) for k in two}
# gap = {k: on_val[k] - acc[k] for k in two}  # val − test per seed: the cost of a new voice
# for k, g in gap.items():
#     print(f"{k:15s} val − test {format_spread(g, 100, ' pts')}")
# print("audio gap − joint gap:", paired_bootstrap(gap["audio only"], gap["joint (concat)"]).format(100, " pts"))
# ```
#
# The lesson asserts the first half: audio alone loses more than 10 points on new voices in every seed. The
# joint model's gap is not measured here. What to look for: images and captions do not change with the voice,
# so if the joint model leans on them its gap should be smaller — an interval for "audio gap − joint gap" above 0
# says so; one that straddles 0 says the joint model pays the same price for a new voice.
#
# </details>
#
# **Exercise 4 — a CNN for images.** Replace `MLPEncoder` by `mmlab.models.ImageCNN` for images. Does a CNN help on
# 8×8 pixels?
#
# <details><summary>Answer</summary>
#
# In `run`, use `"image": ImageCNN(64)` (the images are already `(B, 1, 8, 8)`, the layout `ImageCNN` expects)
# and re-run the `"image only"` setup over the same 5 seeds. Choosing an encoder is a choice, so make it on
# **val**: compare `val_acc` of the two encoders with `paired_bootstrap` (same seeds, so the differences are
# paired) and only then read test once for the one you keep. This notebook has not measured it. What to look
# for: an 8×8 digit has only 64 pixels, and after one 2×2 pooling the CNN's global average throws away *where*
# the strokes are, which the MLP keeps; whether the CNN's built-in translation invariance is worth that is
# exactly what the paired interval answers. Compare parameter counts too
# (`sum(p.numel() for p in model.parameters())`).
#
# </details>
#
# ## Check your understanding
# 1. Why would choosing the epoch by *test* accuracy make the reported test number too good, even though each
#    model was only ever trained on train?
#
#    <details><summary>Answer</summary>
#
#    Each epoch's test accuracy is the true accuracy plus noise from the particular test items. Picking the
#    epoch with the highest test score also picks the epoch whose noise happened to be most favourable, so the
#    maximum is biased upward. The test split has then become a second validation split, and nothing unseen is
#    left to report on. Choosing on val moves that upward bias onto val, where it does no harm.
#
#    </details>
#
# 2. Why does the course compare two setups through their *paired* differences $d_s = a_s - b_s$ rather than by
#    checking whether their two "mean ± std" ranges overlap?
#
#    <details><summary>Answer</summary>
#
#    Runs with the same seed share their luck (the same data order and sampled data), so a seed that is hard
#    for A tends to be hard for B as well. The difference $d_s$ cancels that shared part, and its spread can be
#    much smaller than either setup's own spread. Overlapping ranges can hide a difference that holds in every
#    seed; the paired interval and the sign count show it.
#
#    </details>
#
# 3. With 5 seeds, why is a 95% bootstrap interval "optimistic"?
#
#    <details><summary>Answer</summary>
#
#    The bootstrap resamples the 5 observed differences, so every resampled mean lies between the smallest and
#    the largest of them: the interval can never be wider than the range seen (the live example above asserts
#    it). A sixth seed could fall outside that range. So the interval says "stable over these seeds", not
#    "proven"; more seeds make it honest.
#
#    </details>
#
# **Derivation: why n − 1.** Let $x_1, \dots, x_n$ be independent draws with mean $\mu$ and variance $\sigma^2$,
# and $\bar x = \frac1n \sum_i x_i$. Show that $\mathbb E\big[\sum_i (x_i - \bar x)^2\big] = (n-1)\,\sigma^2$, so
# $s^2 = \frac{1}{n-1}\sum_i (x_i - \bar x)^2$ is unbiased.
#
# <details><summary>Answer</summary>
#
# Write $x_i - \bar x = (x_i - \mu) - (\bar x - \mu)$ and expand the square:
#
# $$\sum_i (x_i - \bar x)^2 = \sum_i (x_i - \mu)^2 - 2(\bar x - \mu)\sum_i (x_i - \mu) + n(\bar x - \mu)^2
#   = \sum_i (x_i - \mu)^2 - n(\bar x - \mu)^2,$$
#
# because $\sum_i (x_i - \mu) = n(\bar x - \mu)$. Take expectations: $\mathbb E[(x_i - \mu)^2] = \sigma^2$ for
# each of the $n$ terms, and $\mathbb E[(\bar x - \mu)^2] = \mathrm{Var}(\bar x) = \sigma^2/n$ (independent draws).
# So $\mathbb E\big[\sum_i (x_i - \bar x)^2\big] = n\sigma^2 - n\cdot\sigma^2/n = (n-1)\sigma^2$. One of the $n$
# "degrees of freedom" was spent estimating $\bar x$. Two remarks: $s$ itself (the square root) is still slightly
# biased low, since the square root is concave (Jensen), but the convention is to correct the variance; and
# with $n = 1$ there is no spread to measure at all, which is why `mmlab.stats.sample_std` returns NaN there.
#
# </details>

# %% [markdown]
# ## Summary
# * The course runs on your CPU, offline, in minutes; `mmlab.get_device()` uses a GPU when there is one.
# * AV-Digits gives three modalities of the same digit with a noise knob each; test speakers are unseen.
# * Numbers in this course come with their data, metric, baseline and seeds: trained on train, chosen on val,
#   reported once on test, with spreads over seeds and paired intervals — and an assertion that fails if
#   they stop holding. Next: **Lesson 1 — modality alignment**.

# %% [markdown]
# ## References
# **Data**
# * E. Alpaydin, C. Kaynak. *Optical Recognition of Handwritten Digits* (data set). UCI Machine Learning
#   Repository, 1998. [archive.ics.uci.edu](https://archive.ics.uci.edu/ml/datasets/optical+recognition+of+handwritten+digits)
#   — the 8×8 digits of AV-Digits, as bundled by scikit-learn's
#   [`load_digits`](https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html).
# * F. Pedregosa, G. Varoquaux, A. Gramfort, et al. Scikit-learn: Machine Learning in Python. *JMLR* 12,
#   2825–2830, 2011. [jmlr.org](https://jmlr.org/papers/v12/pedregosa11a.html)
# * eSpeak NG, the open-source speech synthesizer that speaks AV-Digits' words.
#   [github.com/espeak-ng/espeak-ng](https://github.com/espeak-ng/espeak-ng)
# * V. Vielzeuf, A. Lechervy, S. Pateux, F. Jurie. CentralNet: a Multilayer Approach for Multimodal Fusion.
#   *ECCV Workshops*, 2018. [arXiv:1808.07275](https://arxiv.org/abs/1808.07275) — uses AV-MNIST (handwritten
#   and spoken digits paired by label), the design AV-Digits copies.
# * S. S. Stevens, J. Volkmann, E. B. Newman. A Scale for the Measurement of the Psychological Magnitude Pitch.
#   *J. Acoust. Soc. Am.* 8(3), 185–190, 1937. [doi:10.1121/1.1915893](https://doi.org/10.1121/1.1915893) — the
#   mel scale of the log-mel spectrograms.
#
# **Tools and measurement**
# * A. Paszke, S. Gross, F. Massa, et al. PyTorch: An Imperative Style, High-Performance Deep Learning Library.
#   *NeurIPS*, 2019. [arXiv:1912.01703](https://arxiv.org/abs/1912.01703)
# * B. Efron. Bootstrap Methods: Another Look at the Jackknife. *Annals of Statistics* 7(1), 1–26, 1979.
#   [doi:10.1214/aos/1176344552](https://doi.org/10.1214/aos/1176344552)
# * B. Efron, R. J. Tibshirani. *An Introduction to the Bootstrap*. Chapman & Hall, 1993 — percentile intervals
#   and the sample variance.
# * X. Bouthillier, P. Delaunay, M. Bronzi, et al. Accounting for Variance in Machine Learning Benchmarks.
#   *MLSys*, 2021. [arXiv:2103.03098](https://arxiv.org/abs/2103.03098) — why one seed is one draw, and what
#   to vary.
#
# **Alternatives worth knowing**
# * T. G. Dietterich. Approximate Statistical Tests for Comparing Supervised Classification Learning
#   Algorithms. *Neural Computation* 10(7), 1895–1923, 1998. [doi:10.1162/089976698300017197](https://doi.org/10.1162/089976698300017197)
#   — the 5×2 cross-validated paired t-test, a test instead of an interval.
# * R. Dror, G. Baumer, S. Shlomov, R. Reichart. The Hitchhiker's Guide to Testing Statistical Significance in
#   Natural Language Processing. *ACL*, 2018. [aclanthology.org/P18-1128](https://aclanthology.org/P18-1128/)
# * P. Henderson, R. Islam, P. Bachman, J. Pineau, D. Precup, D. Meger. Deep Reinforcement Learning that Matters.
#   *AAAI*, 2018. [arXiv:1709.06560](https://arxiv.org/abs/1709.06560) — how much seeds alone move results.
# * R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville, M. G. Bellemare. Deep Reinforcement Learning at the
#   Edge of the Statistical Precipice. *NeurIPS*, 2021. [arXiv:2108.13264](https://arxiv.org/abs/2108.13264) —
#   bootstrap intervals and robust aggregates when there are only a few runs.
# * P. P. Liang, Y. Lyu, X. Fan, et al. MultiBench: Multiscale Benchmarks for Multimodal Representation Learning.
#   *NeurIPS Datasets and Benchmarks*, 2021. [arXiv:2107.07502](https://arxiv.org/abs/2107.07502) — real
#   multimodal data sets (AV-MNIST among them) once AV-Digits is too small.
