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
# # Lesson 3 — Missing modalities: robustness you can measure
#
# **What you'll do:** take a recipe for "missing-modality compensation" that circulates online and watch it fail;
# train an image + audio classifier on complete data and measure how it collapses when a modality goes missing at
# test time; then train four repairs — modality dropout (ModDrop), a learned missing token, cross-modal
# reconstruction (MMIN-style) — and compare them with one curve and one number each.
#
# **What you'll learn:** how to *simulate* missingness with a presence mask; why a model leans on one modality
# (and not necessarily the best one); why filling in a constant cannot add information; why the missingness you
# train with must match the missingness you test with; how to summarise robustness as an area under a curve.
#
# **What you'll need:** Lesson 0 (AV-Digits, `mmlab.train`). Runs on a laptop CPU in well under a minute.
# **Time:** ~25 minutes.

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
# ## 1. Intuition
# A deployed multimodal model meets incomplete inputs all the time: a camera is covered, a microphone is muted,
# a form has no photo. A model trained only on complete pairs has never seen that. Whatever we feed in place of
# the missing input — zeros, an average — is something it never met in training, and nothing forced it to make a
# good decision from the modalities that remain.
#
# Two questions decide how bad that is: *which* modality the model leans on, and *whether training ever showed it
# the situation*. We will measure both. One convention for the whole lesson: a **presence mask** `present` is a
# bool tensor of shape `(batch, modalities)`, **True = present**, and every sample keeps at least one modality.

# %%
import numpy as np
import torch
from ipywidgets import FloatSlider, Layout, interact
from torch import nn

from mmlab import get_device

device = get_device()
print("device:", device)

# %% [markdown]
# ## 2. The tempting recipe, re-created
# The recipe loops over the modalities and, for each missing one, calls a `learn_compensation` method; its
# constructor builds one `Linear` layer per modality "for compensation". Here is a faithful minimal re-creation.


# %%
class CompensationRecipe(nn.Module):
    """The recipe as written: compensation layers are built, and a method that does not exist is called."""

    def __init__(self, dims: dict[str, int]):
        super().__init__()
        self.compensators = nn.ModuleDict({m: nn.Linear(d, d) for m, d in dims.items()})

    def forward(self, features: dict[str, torch.Tensor], mask: dict[str, bool]) -> dict[str, torch.Tensor]:
        out = {}
        for m, x in features.items():
            out[m] = x if mask[m] else self.learn_compensation(x, m)
        return out


recipe = CompensationRecipe({"image": 32, "audio": 32})
feats = {"image": torch.randn(4, 32), "audio": torch.randn(4, 32)}
try:
    recipe(feats, {"image": True, "audio": False})
    crashed = False
except AttributeError as err:
    print("AttributeError:", err)
    crashed = True
assert crashed, "the recipe as written cannot run"

# %% [markdown]
# It crashes. Suppose we "fix" it the obvious way — `learn_compensation(x, m) = compensators[m](x)` — and train
# on complete data, as the recipe does. Do the compensation layers learn anything?

# %%
recipe.learn_compensation = lambda x, m: recipe.compensators[m](x)
head = nn.Linear(64, 10)
out = recipe(feats, {"image": True, "audio": True})  # training data are complete
loss = nn.functional.cross_entropy(head(torch.cat([out["image"], out["audio"]], 1)), torch.arange(4))
loss.backward()
grads = [p.grad for p in recipe.compensators.parameters()]
print("gradients reaching the compensation layers:", grads)
assert all(g is None for g in grads), "with complete training data the compensators never get a gradient"

# %% [markdown]
# They never receive a gradient: with complete training data the compensation branch is never taken, so the
# layers keep their random initialisation. Reading the recipe again, everything that matters is left undefined:
#
# | left undefined | what this lesson does |
# |---|---|
# | `learn_compensation` does not exist; the `Linear` layers are never used | a fill, a learned token, or a reconstruction network, each defined and tested |
# | it "compensates" a missing modality *from that modality's own features* — which are missing | predict the missing embedding from the modalities that *are* present |
# | no target: nothing says what a good compensation is | the embedding the full-modality input would have had (MMIN) |
# | no missingness during training, so nothing would train the compensation | simulate it: modality dropout with a presence mask |
# | `mask[m]` is one flag per modality for the whole batch; True means present? | a per-sample `(batch, modalities)` mask, True = present |

# %% [markdown]
# ## 3. Data, and which modality the model leans on
# AV-Digits with two modalities: the 8×8 **image** (64 pixels) and the spoken **audio**, summarised as 40 MFCC
# statistics (mean and std of 20 coefficients over time), so that the ~40 models of this lesson train quickly.
# Test clips come from two voices never heard in training, so audio is the weaker modality *at test time*.
# No noise knobs are needed: the held-out speakers already make the two modalities unequal.

# %%
from mmlab.lessons.missing import lesson_encoders, load_missing_data

data = load_missing_data()  # audio standardised with statistics from the training split only
X_train, X_test = data.train_inputs, data.test_inputs  # [image (N, 64), audio (N, 40)]
y_train, y_test = data.train_labels, data.test_labels
MODALITIES = list(data.modalities)
distinct_audio, distinct_images = len(torch.unique(X_train[1], dim=0)), len(torch.unique(X_train[0], dim=0))
print(f"train {len(y_train)} · test {len(y_test)} · image {tuple(X_train[0].shape)} · audio {tuple(X_train[1].shape)}")
print(f"distinct rows in train: audio {distinct_audio} · images {distinct_images}")
for m, enc in lesson_encoders().items():  # a small MLP per modality, each to a 32-d embedding
    layers = [
        f"Linear({x.in_features}→{x.out_features})" if isinstance(x, nn.Linear) else type(x).__name__ for x in enc.net
    ]
    print(f"{m} encoder:", " – ".join(layers))

# %% [markdown]
# First, each modality alone, over five seeds. `MissingModalityClassifier` (from `mmlab.missing`, used all
# lesson) is `head(concat(embeddings))`; with one encoder it is a plain unimodal classifier.
# `train_classifier` trains it with Adam through `mmlab.train.fit` (the course's one loop, with a progress bar);
# `train_missing_model(seed, data, ...)` (from `mmlab.lessons.missing`) builds a fresh model with that seed,
# trains it and returns the model, its history and its test accuracy for every presence pattern
# (`accuracy_by_pattern`).

# %%
from mmlab.lessons.missing import train_missing_model

SEEDS = [0, 1, 2, 3, 4]
EPOCHS = 30
alone_acc = {m: [] for m in MODALITIES}
alone_loss = {m: [] for m in MODALITIES}
for seed in SEEDS:
    for m in MODALITIES:
        alone = train_missing_model(seed, data, modalities=[m], epochs=EPOCHS, device=device, desc=f"{m} alone")
        alone_acc[m].append(alone.pattern_acc[(True,)])
        alone_loss[m].append(alone.history["ce"])  # training cross-entropy per epoch
alone_acc = {m: np.array(v) for m, v in alone_acc.items()}
for m in MODALITIES:
    print(f"{m:5s} alone: test accuracy {100 * alone_acc[m].mean():.1f} ± {100 * alone_acc[m].std(ddof=1):.1f} %")

# %%
from mmlab.viz import plot_curves

epochs_axis = list(range(1, EPOCHS + 1))
plot_curves(
    epochs_axis,
    {f"{m} alone": np.mean(alone_loss[m], 0) for m in MODALITIES},
    errors={f"{m} alone": np.std(alone_loss[m], 0, ddof=1) for m in MODALITIES},
    logy=True,
    xlabel="epoch",
    ylabel="training cross-entropy (nats, log scale)",
    title="Audio is fitted far faster than images (5 seeds)",
)

# %% [markdown]
# Two facts pull in opposite directions. On **test** data the image is the stronger modality. On **training**
# data audio is far easier: the training split holds only 240 distinct clips for its 1,078 items, so audio is
# memorised within a few epochs while images take much longer. A model trained on both will lean on whatever
# lowers the training loss fastest — audio. (Lesson 4 studies this imbalance; here we watch its consequence.)

# %%
loss_at_5 = {m: np.array([h[4] for h in alone_loss[m]]) for m in MODALITIES}
print("training loss after 5 epochs:", {m: np.round(v, 3) for m, v in loss_at_5.items()})
assert alone_acc["image"].mean() > alone_acc["audio"].mean() + 0.1, alone_acc  # image stronger at test time
assert (loss_at_5["audio"] < 0.6 * loss_at_5["image"]).all(), loss_at_5  # audio fitted faster, every seed
assert distinct_audio < len(y_train) / 4 and distinct_images == len(y_train)  # few clips, repeated

# %% [markdown]
# ## 4. Simulating missingness
# `sample_presence(batch, rates)` drops modality $m$ independently with probability $r_m$. A row that lost
# everything gets one modality back, modality $m$ with probability $(1-r_m)/\sum_k (1-r_k)$, so the realised
# missing rate is
# $$r'_m = r_m - \prod_k r_k \cdot \frac{1-r_m}{\sum_k (1-r_k)},$$
# exactly $r_m$ whenever some other modality is never missing. `pattern_probabilities` gives the probability of
# each presence pattern in closed form.

# %%
from mmlab.missing import effective_rates, pattern_probabilities, sample_presence

gen = torch.Generator().manual_seed(0)
mask = sample_presence(100_000, [0.6, 0.5], generator=gen)
print("first rows (image, audio):\n", mask[:4])
print(
    "measured missing rates:",
    (~mask).float().mean(0).numpy().round(3),
    "· formula:",
    np.round(effective_rates([0.6, 0.5]), 3),
)
print("pattern probabilities:", {k: round(v, 3) for k, v in pattern_probabilities([0.6, 0.5]).items()})
assert mask.any(1).all(), "no sample loses every modality"
assert np.allclose((~mask).float().mean(0).numpy(), effective_rates([0.6, 0.5]), atol=0.01)

# %% [markdown]
# ## 5. Train on complete data, test with a modality missing
# Now the baseline almost everyone ships: both modalities, concatenated, trained on complete data. At test time a
# missing modality's embedding is replaced by a fill before fusion — `"zero"` (what code that forgets about
# missingness does) or `"mean"` (the training-set mean embedding, no retraining needed):
# $$\tilde z_m = p_m\, z_m + (1-p_m)\, v_m, \qquad v_m = 0 \ \text{or}\ \bar z_m^{\text{train}}.$$
#
# Each test sample is classified on its own, so the accuracy when modality $m$ is missing at rate $r$ is, in
# expectation, the straight line $(1-r)\,\text{acc(all)} + r\,\text{acc(without } m)$. Two evaluations per
# modality give the whole curve: `accuracy_by_pattern` measures every presence pattern once.


# %%
from mmlab.missing import accuracy_by_pattern


def run(seed, **model_kwargs):
    """Train one two-modality model with this seed; return it and its accuracy for every presence pattern."""
    trained = train_missing_model(seed, data, epochs=EPOCHS, device=device, **model_kwargs)
    return trained.model, trained.pattern_acc


BOTH, IMAGE_ONLY, AUDIO_ONLY = (True, True), (True, False), (False, True)
results = {"full data, zero fill": [], "full data, mean fill": []}
full_models = []
for seed in SEEDS:
    model, acc = run(seed, fill="zero")
    results["full data, zero fill"].append(acc)
    model.set_fill_mean(*X_train)  # mean embedding over the training split
    model.fill = "mean"
    results["full data, mean fill"].append(accuracy_by_pattern(model, X_test, y_test))
    model.fill = "zero"
    full_models.append(model)


def pattern_mean(name, pattern):
    """Mean over seeds of a method's accuracy for one presence pattern."""
    return np.mean([acc[pattern] for acc in results[name]])


for name in results:
    print(
        f"{name:22s} both {100 * pattern_mean(name, BOTH):5.1f}% · audio missing {100 * pattern_mean(name, IMAGE_ONLY):5.1f}%"
        f" · image missing {100 * pattern_mean(name, AUDIO_ONLY):5.1f}%"
    )

# %% [markdown]
# The straight-line claim is easy to check: draw a real random mask with audio missing for half of the test
# samples and compare with the line's midpoint.

# %%
from mmlab.missing import evaluate_with_missing, expected_accuracy

sampled = evaluate_with_missing(full_models[0], X_test, y_test, [0.0, 0.5], generator=torch.Generator().manual_seed(1))
predicted = expected_accuracy(results["full data, zero fill"][0], [0.0, 0.5])
print(f"audio missing at 50%: sampled mask {100 * sampled:.1f}% · straight line {100 * predicted:.1f}%")
assert abs(sampled - predicted) < 0.08

# %% [markdown]
# `missing_curves_figure` (from `mmlab.lessons.missing`) draws, for each modality, these straight lines
# (`missing_rate_curve`) for every method, mean ± std over the seeds, with the other modality's accuracy alone
# dashed: the ceiling at missing rate 1.

# %%
from mmlab.lessons.missing import missing_curves_figure
from mmlab.missing import missing_rate_curve

RATES = np.linspace(0, 1, 11)
ceilings = {m: alone_acc[m].mean() for m in MODALITIES}


def curves_figure(names, title):
    """Accuracy vs missing rate of each modality for the named methods (mean ± std over seeds), ceilings dashed."""
    return missing_curves_figure(
        {n: results[n] for n in names}, ceilings, modalities=MODALITIES, rates=RATES, title=title
    )


curves_figure(list(results), "Trained on complete data: collapse when audio goes missing (5 seeds)")

# %% [markdown]
# **What the seeds show:**
# * With **audio missing**, the complete-data model drops far below what the image does *alone* — and, with a
#   zero fill, even below the weaker audio modality alone. The image evidence is there; the model never learned
#   to decide from it.
# * With **image missing**, it lands near the audio-alone level: it was leaning on audio anyway.
# * The mean fill helps a lot over the zero fill, yet stays far from the image-alone ceiling. The head here is
#   linear, so any constant fill only adds a constant vector to the logits: it can *shift the class prior* (and a
#   zero embedding, never seen in training, shifts it badly), but it cannot add information.

# %%
full = "full data, zero fill"
assert pattern_mean(full, IMAGE_ONLY) < alone_acc["audio"].mean() - 0.15  # audio missing: below even audio alone
assert pattern_mean(full, IMAGE_ONLY) < alone_acc["image"].mean() - 0.35  # ... and far below the image's own level
assert pattern_mean(full, AUDIO_ONLY) < alone_acc["audio"].mean() + 0.03  # image missing: near audio alone, or below
assert pattern_mean("full data, mean fill", IMAGE_ONLY) > pattern_mean(full, IMAGE_ONLY) + 0.1
assert pattern_mean("full data, mean fill", IMAGE_ONLY) < alone_acc["image"].mean() - 0.2

# %% [markdown]
# ## 6. The methods that work: train under missingness
# **Modality dropout** (ModDrop, Neverova et al., TPAMI 2016): during training, drop whole modalities at random,
# exactly as they will go missing at test time. In `mmlab` it is a layer, like `nn.Dropout`: in training mode
# `ModalityDropout(rates)` ANDs the presence mask with a fresh `sample_presence(batch, rates)`; in eval mode it
# does nothing. We drop each modality at rate 0.5. Three ways to fill what was dropped:
#
# * **zero fill** — plain ModDrop;
# * **learned missing token** — a trained vector $t_m$ per modality, $\tilde z_m = p_m z_m + (1-p_m) t_m$, like
#   BERT's `[MASK]` embedding;
# * **cross-modal reconstruction** (MMIN, Zhao, Li & Jin, ACL 2021): a residual autoencoder predicts the missing
#   embedding from the present ones, $\hat z = \tilde z + \mathrm{Dec}(\mathrm{Enc}([\tilde z;\, p]))$, trained
#   against the embedding the full input actually has:
#   $$\mathcal L = \mathrm{CE}(y, \mathrm{head}(\hat z)) + \lambda\, \frac{1}{n_{\text{miss}}\, d}
#   \sum_{i,m:\ p_{im}=0} \lVert \hat z_{im} - \mathrm{sg}(z_{im}) \rVert^2 ,$$
#   where $\mathrm{sg}$ stops the gradient, so the encoders are not pulled toward easy-to-predict embeddings.
#
# The reference that needs no cleverness, at three times the cost: **one model per pattern** — the image-alone
# model when audio is missing, the audio-alone model when the image is missing, the complete-data model otherwise.

# %%
TRAIN_RATES = (0.5, 0.5)
methods = {
    "ModDrop, zero fill": dict(fill="zero", train_rates=TRAIN_RATES),
    "ModDrop, learned token": dict(fill="token", train_rates=TRAIN_RATES),
    "ModDrop, reconstruction": dict(fill="reconstruct", train_rates=TRAIN_RATES),
}
recon_models = []
for name, kwargs in methods.items():
    results[name] = []
    for seed in SEEDS:
        model, acc = run(seed, **kwargs)
        results[name].append(acc)
        if kwargs["fill"] == "reconstruct":
            recon_models.append(model)
results["one model per pattern"] = [
    {BOTH: f[BOTH], IMAGE_ONLY: float(i), AUDIO_ONLY: float(a)}
    for f, i, a in zip(results[full], alone_acc["image"], alone_acc["audio"])
]

# %%
curves_figure(list(results), "Accuracy vs test-time missing rate (5 seeds; mean ± std)")

# %% [markdown]
# One number per method: the **area under the accuracy-vs-missing-rate curve**, divided by the range of rates —
# the mean accuracy over missing rates from 0 to 1 (`robustness_auc`, trapezoid rule). 1 would be perfect
# whatever goes missing.

# %%
from mmlab.missing import robustness_auc

auc = {
    name: np.array([[robustness_auc(RATES, missing_rate_curve(a, k, RATES)) for k in range(2)] for a in accs])
    for name, accs in results.items()
}
print(f"{'method':26s} {'both present':>14s} {'AUC, image missing':>20s} {'AUC, audio missing':>20s} {'mean AUC':>12s}")
for name, a in auc.items():
    both = np.array([acc[BOTH] for acc in results[name]])
    mean_auc = a.mean(1)
    print(
        f"{name:26s} {100 * both.mean():8.1f} ± {100 * both.std(ddof=1):3.1f}"
        + "".join(f" {100 * a[:, k].mean():14.1f} ± {100 * a[:, k].std(ddof=1):3.1f}" for k in range(2))
        + f" {100 * mean_auc.mean():6.1f} ± {100 * mean_auc.std(ddof=1):3.1f}"
    )

# %% [markdown]
# **What the seeds show** (asserted below):
# * Every ModDrop-trained model has a far larger area under the curve than the complete-data model.
# * With audio missing they stay near the image-alone ceiling; with the image missing, near the audio-alone
#   ceiling — within a few points of the specialist models, with one network.
# * ModDrop also wins when *nothing* is missing. A plausible reason, consistent with section 3 but not proven
#   here: dropping audio half the time forces the image encoder to be useful on its own, so the fused model stops
#   over-trusting audio, which generalises worse to unseen speakers.
# * Among the three fills the differences are small, with one exception: with the image missing, reconstruction
#   beats plain ModDrop on average and even exceeds audio alone. A likely reason: predicting the image embedding
#   from audio is an extra training signal that carries what the image encoder learned into the audio pathway.

# %%
trained = list(methods)
for name in trained:
    assert auc[name].mean() > auc[full].mean() + 0.1, (name, auc[name].mean(), auc[full].mean())
    assert pattern_mean(name, IMAGE_ONLY) > alone_acc["image"].mean() - 0.04, name  # audio missing: image ceiling
    assert pattern_mean(name, AUDIO_ONLY) > alone_acc["audio"].mean() - 0.06, name  # image missing: audio ceiling
    assert pattern_mean(name, BOTH) > pattern_mean(full, BOTH) + 0.03, name  # better even with nothing missing
assert pattern_mean("ModDrop, reconstruction", AUDIO_ONLY) > pattern_mean("ModDrop, zero fill", AUDIO_ONLY)
assert pattern_mean("ModDrop, reconstruction", AUDIO_ONLY) > alone_acc["audio"].mean() + 0.02

# %% [markdown]
# Does the reconstruction network really predict the missing embedding, or does the classifier just cope? Compare
# its error on test data with that of a constant guess, the training-mean embedding (relative error < 1 means it
# learned something about one modality from the other).

# %%
from mmlab.missing import reconstruction_loss

rel = []
with torch.no_grad():
    for model in recon_models:
        z_test = model.embed(*(x.to(device) for x in X_test))
        z_mean = [z.mean(0) for z in model.embed(*(x.to(device) for x in X_train))]
        row = []
        for k in range(2):
            present = torch.ones(len(y_test), 2, dtype=torch.bool, device=device)
            present[:, k] = False
            recon = reconstruction_loss(model.complete(z_test, present), z_test, present)
            guess = reconstruction_loss([z_mean[j].expand_as(z) for j, z in enumerate(z_test)], z_test, present)
            row.append((recon / guess).item())
        rel.append(row)
rel = np.array(rel)
for k, m in enumerate(MODALITIES):
    print(
        f"{m} reconstructed from {MODALITIES[1 - k]}: error / mean-guess error = {rel[:, k].mean():.2f} ± {rel[:, k].std(ddof=1):.2f}"
    )
assert (rel < 0.8).all(), rel

# %% [markdown]
# ## 7. The trap: train with one missingness pattern, test with another
# ModDrop only protects against the missingness it simulates. Suppose the training team knew cameras fail and
# dropped only the *image* in training (rates 0.5 and 0); in deployment the microphone fails instead.

# %%
results["trap: ModDrop on image only"] = [run(seed, fill="zero", train_rates=(0.5, 0.0))[1] for seed in SEEDS]
trap = "trap: ModDrop on image only"
for name in (full, "ModDrop, zero fill", trap):
    print(
        f"{name:28s} audio missing {100 * pattern_mean(name, IMAGE_ONLY):5.1f}% · image missing {100 * pattern_mean(name, AUDIO_ONLY):5.1f}%"
    )

# %% [markdown]
# Against the failure it trained for (image missing) the trap model is about as robust as full ModDrop; against the
# other one (audio missing) it is far below it, because it never had to classify from the image alone. Simulate
# in training the missingness you expect at test time — for every modality that can go missing.

# %%
assert pattern_mean(trap, IMAGE_ONLY) < pattern_mean("ModDrop, zero fill", IMAGE_ONLY) - 0.15
assert abs(pattern_mean(trap, AUDIO_ONLY) - pattern_mean("ModDrop, zero fill", AUDIO_ONLY)) < 0.05

# %% [markdown]
# ## 8. Explore: missing rates in, accuracy out
# Set how often each modality is missing at test time; the bars show each method's expected accuracy (mean ±
# std over the 5 seeds), computed from the per-pattern accuracies above (no sampling, nothing retrained). The
# title shows the realised missing rates (a sample never loses both modalities).

# %%
# NBVAL_IGNORE_OUTPUT
from mmlab.lessons.missing import missing_rates_figure


def rate_slider(value, description):
    """A 0–1 slider whose description is never cut short."""
    return FloatSlider(
        value=value,
        min=0,
        max=1,
        step=0.05,
        description=description,
        style={"description_width": "initial"},
        layout=Layout(width="420px"),
    )


_ = interact(
    lambda image_missing, audio_missing: missing_rates_figure(results, [image_missing, audio_missing], MODALITIES),
    image_missing=rate_slider(0.0, "image missing rate"),
    audio_missing=rate_slider(0.5, "audio missing rate"),
)

# %% [markdown]
# ## Exercises
# 1. **Training rate.** Retrain ModDrop with `TRAIN_RATES = (0.2, 0.2)` and `(0.8, 0.8)`. How do the accuracy
#    with both present and the two areas under the curve move? Is there a rate that is best for all three?
# 2. **Fill at the input.** `mmlab.missing.zero_fill` and `mean_fill` work on any `(batch, ...)` tensor. Take a
#    complete-data model and fill the *raw* image (a blank image, or the mean image) instead of its embedding.
#    Does the blank image behave like the zero embedding?
# 3. **A non-linear head.** Build the models with `hidden=64` (an MLP head). Does the gap between zero and mean
#    fill for the complete-data model change? Why could it, now that a constant no longer just shifts the logits?
# 4. **Three modalities.** Add the captions of Lesson 0 (`text_noise=0.6`) as a third modality. How many
#    presence patterns are there, and how many specialist models would "one model per pattern" need?
#
# ## Summary
# * A model trained on complete data leans on the modality that is easiest *to fit*, here audio from a few
#   training voices — not the one that is best at test time. Take it away and accuracy collapses below what the
#   remaining modality achieves alone.
# * A constant fill (zero, mean) cannot add information; it can only avoid misleading the head.
# * Modality dropout — training under the missingness you expect — is what buys robustness; a learned token or a
#   cross-modal reconstruction on top are cheap, and reconstruction can transfer knowledge between modalities.
# * Robustness is a curve, not a number at one missing rate: report accuracy against the missing rate of each
#   modality, its area, and the unimodal ceilings. Next: **Lesson 4 — imbalance and loss balancing**.
