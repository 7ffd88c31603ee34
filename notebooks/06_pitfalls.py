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
# # Lesson 6 — Pitfalls: bigger is not better, and dirty data
#
# **What you'll do:** train fusion networks of growing depth on a small multimodal training set and watch test
# accuracy fall while training accuracy stays at 100%; then see what knowledge distillation from a bigger model
# does for a *light* one. In the second half you will dirty a data set on purpose, with mismatched image–speech pairs and
# wrong labels, measure what that costs, find the dirty items again with two quality scores, and train on the
# cleaned data.
#
# **What you'll learn:** why stacking layers is a poor answer to a small data set; how a big model's knowledge
# reaches a small one; how CLIP-score-style cross-modal agreement and the small-loss criterion detect the two
# kinds of dirt; how to judge a detector (AUROC, precision, recall) against a known ground truth; filtering
# versus score-weighted sampling.
#
# **What you'll need:** lessons 0 and 5 (distillation). Everything runs on a laptop CPU in about a minute.
# **Time:** ~40 minutes.
#
# A popular article on multimodal ML ends with two pitfalls: *"stacking layers instead of using a light model
# plus distillation"* and *"training on raw, uncleaned multimodal data instead of cleaning, quality scoring and
# adaptive sampling"*. Both are right in spirit; neither comes with a number. This lesson supplies the numbers,
# including where the advice holds only in part.

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

# %%
import math

import numpy as np
import torch
from ipywidgets import Dropdown, FloatSlider, Layout, fixed, interact

from mmlab import get_device, seed_everything
from mmlab.models import count_parameters
from mmlab.stats import sample_std
from mmlab.viz import bar_chart, new_figure, plot_curves

device = get_device()
SEEDS = [0, 1, 2]
print(f"device: {device} · torch {torch.__version__}")


def mean_std(values):
    """'mean ± std' in percent (sample std, ddof = 1), for tables."""
    v = 100 * np.asarray(values)
    return f"{v.mean():5.1f} ± {sample_std(v):.1f}"


# %% [markdown]
# ## 1. The data: image + speech, with little of it labelled
# We use AV-Digits with two modalities: the 8×8 image (64 pixels) with Gaussian pixel noise of std 0.6, and the
# spoken digit summarised as 40 MFCC statistics (mean and std of 20 coefficients over time). The pixel noise is
# there so that the speech carries information the image lacks; test clips come from voices never heard in
# training.
#
# For the first part, only **20 items per digit (200 in all) are labelled**; the other 878 training pairs have no
# labels. That is the "small data" regime where the size question matters.

# %%
from mmlab.lessons.pitfalls import labeled_split, load_quality_data

data = load_quality_data(image_noise=0.6)
lab, unl = labeled_split(data.label, per_class=20, seed=0)
X_lab, y_lab = [data.image[lab], data.audio[lab]], data.label[lab]
X_unl = [data.image[unl], data.audio[unl]]
X_test, y_test = [data.test_image, data.test_audio], data.test_label
dims = data.input_dims
print(f"labelled {len(lab)} · unlabelled {len(unl)} · test {len(y_test)} · features per modality {dims}")
assert len(lab) == 200 and len(lab) + len(unl) == len(data.label)

# %% [markdown]
# ## 2. The tempting recipe: stack more layers
# The recipe: concatenate the modalities' features, then stack hidden layers — more layers, more power.
# `mmlab.lessons.pitfalls.FusionStack` is exactly that: `h₁ = ReLU(W₁[x_image; x_audio])`, then `depth − 1` more
# `ReLU(W_l h)` layers of the same width, then a linear head. With `residual=True` each extra layer becomes a
# pre-norm residual block `h + W''·ReLU(W'·LayerNorm(h))`, the building block of Transformers, which is the
# usual cure for deep stacks that will not train.
#
# Every model gets the same budget: AdamW, learning rate 1e-3, batches of 64, 75 epochs (300 steps), 3 seeds.

# %%
from mmlab.lessons.pitfalls import FusionStack, train_on_features
from mmlab.train import accuracy, predict


def train_stack(width, depth, seed, residual=False):
    """Train one FusionStack on the 200 labelled items; return (model, train accuracy, test accuracy)."""
    seed_everything(seed)
    model = FusionStack(dims, 10, width=width, depth=depth, residual=residual)
    hist = train_on_features(
        model,
        X_lab,
        y_lab,
        epochs=75,
        lr=1e-3,
        batch_size=64,
        seed=seed,
        device=device,
        desc=f"{'res ' if residual else ''}{depth}×{width}",
    )
    return model, hist.last("train_acc"), accuracy(predict(model, X_test), y_test)


print(FusionStack(dims, 10, width=64, depth=2))

# %%
configs = {
    "1 layer": (64, 1, False),
    "2 layers": (64, 2, False),
    "4 layers": (64, 4, False),
    "8 layers": (64, 8, False),
    "8 layers, residual": (64, 8, True),
}
size = {name: {"train": [], "test": []} for name in configs}
for name, (width, depth, residual) in configs.items():
    for seed in SEEDS:
        model, tr_acc, te_acc = train_stack(width, depth, seed, residual)
        size[name]["train"].append(tr_acc)
        size[name]["test"].append(te_acc)
    size[name]["params"] = count_parameters(model)

print(f"{'model':20s} {'params':>8s}   train acc %    test acc %   (test per seed)")
for name, r in size.items():
    print(
        f"{name:20s} {r['params']:8,d}   {mean_std(r['train'])}   {mean_std(r['test'])}"
        f"   {np.round(100 * np.array(r['test']), 1)}"
    )

# %%
depths = [1, 2, 4, 8]
plain = [f"{d} layer{'s' if d > 1 else ''}" for d in depths]
fig, ax = new_figure(size=(6, 3.8))
plot_curves(
    depths,
    {
        "train (plain stack)": [np.mean(size[n]["train"]) for n in plain],
        "test (plain stack)": [np.mean(size[n]["test"]) for n in plain],
    },
    errors={"test (plain stack)": [sample_std(size[n]["test"]) for n in plain]},
    xlabel="hidden layers (width 64)",
    ylabel="accuracy (fraction)",
    logx=True,
    title="Deeper fusion stacks on 200 labelled pairs (3 seeds)",
    ax=ax,
)
res = size["8 layers, residual"]["test"]
ax.errorbar(
    [8],
    [np.mean(res)],
    yerr=[sample_std(res)],
    fmt="s",
    color="tab:purple",
    capsize=3,
    label="test (residual, 8 layers)",
)
ax.set_xticks(depths, [str(d) for d in depths])
ax.minorticks_off()
ax.legend(fontsize=8)
fig

# %% [markdown]
# **What the seeds show** (asserted below): every model fits its 200 training items perfectly, so what differs is
# only how well it generalises. One and two layers are close; beyond two, test accuracy falls with each doubling
# of depth, and the 8-layer stack loses more than 15 points to the 1-layer one on every seed. With so few items,
# the extra layers mainly add ways to memorise. Residual blocks soften the fall but do not reverse it: 8 residual
# layers are better than 8 plain ones and still worse than 1. (Not every kind of "bigger" hurts: a wide
# two-layer model, below, is no worse than the one-layer one. *Stacking* does.)

# %%
test_mean = {n: np.mean(r["test"]) for n, r in size.items()}
assert all(min(r["train"]) >= 0.99 for r in size.values()), "every model should fit its training set"
assert test_mean["1 layer"] > test_mean["4 layers"] > test_mean["8 layers"], test_mean
assert test_mean["2 layers"] > test_mean["4 layers"], test_mean
gap = np.array(size["1 layer"]["test"]) - np.array(size["8 layers"]["test"])
assert (gap > 0.15).all(), gap
assert test_mean["8 layers"] < test_mean["8 layers, residual"] < test_mean["1 layer"] - 0.03, test_mean
print(f"1 layer beats 8 layers by {100 * gap.min():.1f}–{100 * gap.max():.1f} points across seeds")

# %% [markdown]
# ## 3. The alternative: a light model, distilled from a big one
# The article's alternative is a light model trained with **knowledge distillation** (Hinton, Vinyals & Dean
# 2015; lesson 5). The student minimises
#
# $$L = (1-\lambda)\,\mathrm{CE}(z_s, y) + \lambda\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_s/T)\big).$$
#
# Distilling on the 200 items the teacher was trained on should teach little: the teacher fits them perfectly, so
# its outputs there mostly repeat the labels. Distillation pays where the teacher can label data that has no
# labels: the student is trained on all 1,078 training pairs (the **transfer set**), with the teacher's soft
# predictions as targets (`λ = 1`, `T = 1`). The light student has one hidden layer of 32 units; the teacher is
# a wide two-layer model (256 units per layer). To check where any gain comes from, we also distil with the 200
# labelled items alone as the transfer set (for about as many steps).

# %%
from mmlab.deploy import distill
from mmlab.train import make_loader

kd_names = ("wide teacher (2×256)", "light alone (1×32)", "light distilled, labelled only", "light distilled (1×32)")
kd = {name: [] for name in kd_names}
for seed in SEEDS:
    teacher, _, acc_teacher = train_stack(256, 2, seed)
    _, _, acc_alone = train_stack(32, 1, seed)
    # labels of the unlabelled pairs are the teacher's guesses; with λ = 1 only its soft predictions are used
    guesses = predict(teacher, X_unl).argmax(-1)
    transfer = make_loader(
        torch.cat([X_lab[0], X_unl[0]]),
        torch.cat([X_lab[1], X_unl[1]]),
        torch.cat([y_lab, guesses]),
        batch_size=64,
        shuffle=True,
        seed=seed,
    )
    labelled_only = make_loader(*X_lab, y_lab, batch_size=64, shuffle=True, seed=seed)
    for name, loader, epochs in (
        ("light distilled (1×32)", transfer, 20),
        ("light distilled, labelled only", labelled_only, 85),
    ):  # ~340 steps each
        seed_everything(seed)
        student = FusionStack(dims, 10, width=32, depth=1)
        distill(
            student, teacher, loader, epochs=epochs, temperature=1.0, alpha=1.0, lr=1e-3, device=device, desc="distill"
        )
        kd[name].append(accuracy(predict(student, X_test), y_test))
    kd["wide teacher (2×256)"].append(acc_teacher)
    kd["light alone (1×32)"].append(acc_alone)
params = {name: count_parameters(student) for name in kd_names}
params["wide teacher (2×256)"] = count_parameters(teacher)

print(f"{'model':24s} {'params':>8s}   test acc %    (per seed)")
for name in ("1 layer", "8 layers"):
    print(f"{name + ' (×64)':24s} {size[name]['params']:8,d}   {mean_std(size[name]['test'])}")
for name, accs in kd.items():
    print(f"{name:24s} {params[name]:8,d}   {mean_std(accs)}   {np.round(100 * np.array(accs), 1)}")

# %%
points = {  # name: (parameters, test accuracies)
    **{f"{n} (×64)": (size[n]["params"], size[n]["test"]) for n in size},
    **{n: (params[n], kd[n]) for n in kd_names},
}
fig, ax = new_figure(size=(8, 4.4))
# the three light models have the same size: spread them a little along x so that they can be told apart
nudge = {"light alone (1×32)": 0.8, "light distilled, labelled only": 1.0, "light distilled (1×32)": 1.25}
offset = {
    "light alone (1×32)": (-6, -12),
    "light distilled, labelled only": (6, -14),
    "light distilled (1×32)": (-6, 8),
    "1 layer (×64)": (6, -13),
}
colors = dict(zip(kd_names, ["tab:purple", "tab:blue", "tab:green", "tab:green"]))
for name, (n_params, accs) in points.items():
    x, y = n_params * nudge.get(name, 1.0), np.mean(accs)
    color = colors.get(name, "tab:red")  # red: the depth sweep
    ax.errorbar(x, y, yerr=sample_std(accs), fmt="D" if "distilled" in name else "o", color=color, capsize=3)
    dx, dy = offset.get(name, (6, -3))
    ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7, ha="right" if dx < 0 else "left")
ax.set_xscale("log")
ax.set(
    xlabel="parameters (log scale)",
    ylabel="test accuracy (fraction)",
    xlim=(1200, 3e5),
    title="Accuracy vs size on 200 labelled pairs (mean ± std, 3 seeds)",
)
ax.grid(alpha=0.3)
fig

# %% [markdown]
# **What the seeds show** (asserted below): the wide teacher has more than ten times the parameters of the
# 1-layer, 64-unit model and is within 3 points of it — width did not hurt, but it did not buy accuracy either.
# The light 32-unit model, distilled through the unlabelled pairs, beats itself trained alone by more than a point
# on average and comes within 3 points of its teacher, with over 20× fewer parameters. Distilled on the 200
# labelled items only, it gains less than half as much: the gain comes from the unlabelled data that the teacher's
# predictions open up. That, rather than its size, is what the big model was good for here.
#
# Note what did *not* happen: the distilled model did not beat the shallow 1×64 model trained directly on the 200
# labels. On this data the first fix for the stacking pitfall is simply not to stack; distillation is how you then
# go lighter still while keeping most of the accuracy.

# %%
kd_mean = {k: np.mean(v) for k, v in kd.items()}
distilled, alone = np.array(kd["light distilled (1×32)"]), np.array(kd["light alone (1×32)"])
gain, gain_labelled = distilled - alone, np.array(kd["light distilled, labelled only"]) - alone
assert params["wide teacher (2×256)"] > 10 * size["1 layer"]["params"]
assert params["wide teacher (2×256)"] > 20 * params["light distilled (1×32)"]
assert abs(kd_mean["wide teacher (2×256)"] - test_mean["1 layer"]) < 0.03, (kd_mean, test_mean)
assert gain.mean() > 0.01, gain
assert abs(distilled.mean() - kd_mean["wide teacher (2×256)"]) < 0.03, kd_mean
assert gain_labelled.mean() < gain.mean() / 2, (gain_labelled, gain)
assert distilled.mean() < test_mean["1 layer"] + 0.01, (kd_mean, test_mean)
print(
    f"distillation gains {100 * gain.mean():.1f} points through the unlabelled pairs (per seed: "
    f"{np.round(100 * gain, 1)}), {100 * gain_labelled.mean():.1f} on the labelled items alone"
)

# %% [markdown]
# ## 4. Dirty data: two kinds of dirt, injected with a known ground truth
# Web-scale multimodal data sets are scraped, not curated. Two kinds of dirt matter most:
#
# * **mismatched pairs** — the speech clip belongs to another item (a wrong join, a caption describing another
#   image). LAION-400M filtered its 400 million web image–text pairs by exactly this: a pair was kept only if the
#   cosine similarity of its CLIP image and text embeddings was at least 0.3 (Schuhmann et al. 2021);
# * **wrong labels** — the annotation is simply wrong.
#
# To *measure* cleaning we need to know which items are dirty, so we make the dirt ourselves.
# `mmlab.quality.inject_noise` changes exactly the requested fractions and records every change: a mismatched
# item keeps its image and label and gets the speech clip of a random item *of another digit*; a wrong label is
# replaced by a random other digit. From here on we use the whole labelled training set (1,078 pairs).

# %%
from mmlab.quality import inject_noise
from mmlab.viz import show_images

noise = inject_noise(data.label, mismatch=0.3, label_noise=0.2, num_classes=10, seed=0)
print(
    f"mismatched pairs: {int(noise.mismatched.sum())} of {len(noise)} · wrong labels: "
    f"{int(noise.wrong_label.sum())} · dirty in either way: {int(noise.noisy.sum())}"
)
heard = data.label[noise.partner]  # the digit actually spoken in each (possibly re-paired) clip
show = torch.arange(12)
show_images(
    data.image[show].view(-1, 8, 8),
    labels=[f"y={int(noise.labels[i])} said {int(heard[i])}" + (" ✗" if noise.noisy[i] else "") for i in show],
    ncols=12,
    title="Training items after injection: label y, the digit spoken in the clip, ✗ = dirty",
)

# %% [markdown]
# ## 5. Scoring every item with a warm-up model
# A quality score needs a model, and the only data to train it on is the dirty data itself. The trick is to stop
# early: networks fit the consistent majority of a data set before they memorise its exceptions (Arpit et al.
# 2017). `warmup_scores` trains a `PairScorer` for 8 epochs: one small tower per modality, a shared output layer,
# and the loss `CE(z_image, y) + CE(z_audio, y)`, so each modality must predict the label on its own. Then it
# scores every training item in two ways:
#
# * **cross-modal agreement** `a_i = cos(p_image,i, p_audio,i)`, the cosine of the two towers' predicted class
#   distributions — do the image and the speech tell the same story? This is the CLIP-score idea in a shared
#   class space. (We also record `cos(e_image, e_audio)` of the towers' raw embeddings for comparison.)
# * **small loss** `ℓ_i = log p(y_i | x_i)` from the two towers together — does the model believe the label?
#   Co-teaching (Han et al. 2018) trains on the small-loss items. `−ln 10 ≈ −2.3` is what a uniform guess over
#   10 digits would score.
#
# `run_quality` does it all for one noise setting and seed: inject, score, filter, train, test. We start with
# 30% mismatched pairs *and* 20% wrong labels, over 3 seeds.

# %%
from mmlab.lessons.pitfalls import run_quality
from mmlab.quality import auroc

headline = [
    run_quality(
        data,
        mismatch=0.3,
        label_noise=0.2,
        seed=s,
        device=device,
        methods=("clean", "dirty", "filtered", "weighted", "oracle"),
    )
    for s in SEEDS
]
aucs = {
    "agreement → mismatched pairs": [auroc(r.scores.agreement, r.noise.mismatched) for r in headline],
    "embedding cosine → mismatched pairs": [auroc(r.scores.embedding_agreement, r.noise.mismatched) for r in headline],
    "small loss → wrong labels": [auroc(r.scores.loglik, r.noise.wrong_label) for r in headline],
    "small loss → mismatched pairs": [auroc(r.scores.loglik, r.noise.mismatched) for r in headline],
    "agreement → wrong labels": [auroc(r.scores.agreement, r.noise.wrong_label) for r in headline],
}
print("AUROC (0.5 = chance, 1 = perfect), per seed:")
for name, v in aucs.items():
    print(f"  {name:38s} {np.mean(v):.3f}   {np.round(v, 3)}")

# %%
from mmlab.lessons.pitfalls import score_histogram

r0 = headline[0]
fig, (a1, a2) = new_figure(1, 2, size=(11, 3.6))
score_histogram(
    r0.scores.agreement,
    {"intact pairs": ~r0.noise.mismatched, "mismatched pairs": r0.noise.mismatched},
    threshold=0.5,
    xlabel="agreement cos(p_image, p_audio)",
    title="Cross-modal agreement (seed 0)",
    ax=a1,
)
score_histogram(
    r0.scores.loglik.clamp_min(-12),
    {"right labels": ~r0.noise.wrong_label, "wrong labels": r0.noise.wrong_label},
    threshold=-math.log(10),
    xlabel="log p(y | x) (nats)",
    title="Small-loss score (seed 0)",
    logy=True,
    ax=a2,
)
fig

# %% [markdown]
# Each detector is best at its own kind of dirt. A wrong label leaves image and speech in agreement, so agreement
# barely sees it; a mismatched pair has a label that the image supports, so its loss is only moderately high and
# the small-loss score finds mismatched pairs less well than agreement does. The
# **AUROC** is the probability that a random clean item scores higher than a random dirty one. How the space is
# built matters: the towers' raw embeddings were never trained to lie close together, and their cosine separates
# mismatched pairs worse than the predicted class distributions do.
#
# A detector is used at a threshold. The precision–recall curve shows every choice at once: flag the `k`
# lowest-scoring items as dirty; precision is the share of flagged items that are dirty, recall the share of dirty
# items flagged.

# %%
from mmlab.quality import precision_recall_curve

fig, ax = new_figure(size=(5.5, 3.8))
for scores, truth, name in (
    (r0.scores.agreement, r0.noise.mismatched, "agreement → mismatched pairs"),
    (r0.scores.loglik, r0.noise.wrong_label, "small loss → wrong labels"),
):
    pr = precision_recall_curve(scores, truth)
    ax.plot(pr["recall"], pr["precision"], label=f"{name} (AUROC {auroc(scores, truth):.2f})")
    ax.axhline(truth.float().mean().item(), ls=":", lw=1, color=ax.lines[-1].get_color())
ax.set(
    xlabel="recall (share of dirty items flagged)",
    ylabel="precision (share of flagged that are dirty)",
    title="Detecting dirty items (seed 0); dotted: random flagging",
    ylim=(0, 1.02),
)
ax.legend(fontsize=8)
fig

# %%
assert min(aucs["agreement → mismatched pairs"]) > 0.85, aucs
assert min(aucs["small loss → wrong labels"]) > 0.9, aucs
assert np.mean(aucs["agreement → mismatched pairs"]) > np.mean(aucs["embedding cosine → mismatched pairs"]) + 0.03
assert max(aucs["agreement → wrong labels"]) < 0.75, "agreement should be nearly blind to wrong labels"
assert np.mean(aucs["small loss → mismatched pairs"]) < np.mean(aucs["agreement → mismatched pairs"]) - 0.03

# %% [markdown]
# ## 6. Filter, or down-weight?
# With both scores in hand, two remedies:
#
# * **filtering** — keep item `i` only if `a_i ≥ 0.5` and `ℓ_i ≥ −ln 10`: the towers' predictions overlap at least
#   half-way, and the label is at least as likely as a uniform guess would make it;
# * **score-weighted sampling** — keep every item but draw item `i` with probability proportional to the soft filter
#   `w_i = σ((a_i − 0.5)/0.1) · σ((ℓ_i + ln 10)/0.5)`, with `make_loader(..., weights=w)` (draws with replacement).
#
# Each is compared with training on the data before injection (**clean**), on everything (**dirty**, the tempting
# recipe) and on exactly the truly clean items (**oracle**, which no real pipeline has). The classifier is a
# one-hidden-layer `FusionStack` (128 units) trained for 40 epochs with no early stopping, so it has every
# chance to memorise what it is given.

# %%
methods = ["clean", "dirty", "filtered", "weighted", "oracle"]
acc = {m: np.array([r.accuracy[m] for r in headline]) for m in methods}
for m in methods:
    print(f"{m:9s} test accuracy {mean_std(acc[m])} %   {np.round(100 * acc[m], 1)}")
kept = [r.report for r in headline]
print(
    f"the filter kept {mean_std([k['kept'] for k in kept])} % of the items; of those, "
    f"{mean_std([k['kept_precision'] for k in kept])} % were clean (precision); it kept "
    f"{mean_std([k['kept_recall'] for k in kept])} % of the clean items (recall)"
)
bar_chart(
    {m: acc[m].mean() for m in methods},
    errors={m: sample_std(acc[m]) for m in methods},
    ylabel="test accuracy (fraction)",
    title="30% mismatched pairs + 20% wrong labels (3 seeds)",
)

# %% [markdown]
# **What the seeds show** (asserted below): the dirt costs more than 12 points. Filtering wins most of them back
# (over 60%) and lands within 6 points of the oracle, although it also throws away some clean items.
# Score-weighted sampling helps too, but less — presumably because a down-weighted wrong label is still drawn now
# and then, and a network that trains long enough memorises it anyway.

# %%
recovered = (acc["filtered"] - acc["dirty"]).mean() / (acc["clean"] - acc["dirty"]).mean()
assert acc["dirty"].mean() < acc["clean"].mean() - 0.12, acc
assert (acc["filtered"] > acc["dirty"] + 0.08).all(), acc
assert recovered > 0.6, recovered
assert acc["oracle"].mean() - acc["filtered"].mean() < 0.06, acc
assert np.mean([k["kept_recall"] for k in kept]) < 0.97, "the filter also drops clean items"
assert acc["weighted"].mean() > acc["dirty"].mean() + 0.05, acc
assert acc["filtered"].mean() > acc["weighted"].mean(), acc
print(f"filtering recovers {100 * recovered:.0f}% of the accuracy lost to the dirt")

# %% [markdown]
# ## 7. Sweeping the amount of dirt
# How much does each kind of dirt cost alone, and does the filter keep up? We sweep 10–50% mismatched pairs (no
# wrong labels) and 10–40% wrong labels (no mismatched pairs), three seeds each.

# %%
mismatch_rates, label_rates = [0.1, 0.3, 0.5], [0.1, 0.2, 0.4]
sweep_methods = ("dirty", "filtered", "oracle")
sweep, removed_noisy = {}, {}  # test accuracies; share of the items the filter removed that were dirty
for kind, rates in (("mismatch", mismatch_rates), ("label_noise", label_rates)):
    for rate in rates:
        setting = {"mismatch": 0.0, "label_noise": 0.0, kind: rate}
        runs = [run_quality(data, **setting, seed=s, device=device, methods=sweep_methods) for s in SEEDS]
        sweep[kind, rate] = {m: np.array([r.accuracy[m] for r in runs]) for m in sweep_methods}
        removed_noisy[kind, rate] = np.array([r.report["noise_precision"] for r in runs])
clean_acc = acc["clean"]

fig, axes = new_figure(1, 2, size=(11, 3.8), sharey=True)
for ax, (kind, rates, xlabel) in zip(
    axes,
    (
        ("mismatch", mismatch_rates, "mismatched pairs (fraction)"),
        ("label_noise", label_rates, "wrong labels (fraction)"),
    ),
):
    xs = [0.0, *rates]
    plot_curves(
        xs,
        {m: [clean_acc.mean()] + [sweep[kind, r][m].mean() for r in rates] for m in sweep_methods},
        errors={m: [sample_std(clean_acc)] + [sample_std(sweep[kind, r][m]) for r in rates] for m in sweep_methods},
        xlabel=xlabel,
        ylabel="test accuracy (fraction)",
        title=f"Accuracy vs {xlabel.split(' (')[0]}",
        ax=ax,
    )
fig

# %%
for (kind, rate), r in sweep.items():
    print(f"{kind:11s} {rate:.1f}: " + "  ".join(f"{m} {mean_std(r[m])}" for m in sweep_methods))

# %% [markdown]
# **What the seeds show** (asserted below): wrong labels are the more expensive dirt — 40% of them cost at least
# 10 points more than 50% mismatched pairs. Mismatched pairs hurt less, presumably because the label still matches
# the image, so the model can lean on it; 10% of them cost at most 2 points, and there filtering makes no
# consistent difference (within 2 points on average, and the seeds disagree on its sign): most of the items it
# throws away are clean. At 30% mismatched pairs the dirt costs a few points; filtered training beats
# dirty training on every seed and is as good as the oracle (within 2 points, or better).
# From there on, and at every rate of wrong labels we tried, filtering beats training on everything. At 40% wrong
# labels it falls well short of the oracle: the warm-up model has itself learned from many wrong labels.

# %%
mean = {setting: {m: v.mean() for m, v in r.items()} for setting, r in sweep.items()}
at10, at30 = sweep["mismatch", 0.1], sweep["mismatch", 0.3]
gain10 = at10["filtered"] - at10["dirty"]
assert at10["dirty"].mean() > clean_acc.mean() - 0.02, (at10, clean_acc)
assert abs(gain10.mean()) < 0.02 and (gain10 > 0).any() and (gain10 < 0).any(), gain10
assert removed_noisy["mismatch", 0.1].max() < 0.5, removed_noisy["mismatch", 0.1]
assert at30["dirty"].mean() < clean_acc.mean() - 0.015, (at30, clean_acc)
assert (at30["filtered"] > at30["dirty"] + 0.01).all() and (at30["filtered"] - at30["dirty"]).mean() > 0.02, at30
assert at30["filtered"].mean() > at30["oracle"].mean() - 0.02, at30
assert mean["mismatch", 0.5]["dirty"] < clean_acc.mean() - 0.08, mean
assert mean["label_noise", 0.4]["dirty"] < clean_acc.mean() - 0.2, mean
assert mean["label_noise", 0.4]["dirty"] < mean["mismatch", 0.5]["dirty"] - 0.1, mean
assert all(r["filtered"] > r["dirty"] for setting, r in mean.items() if setting != ("mismatch", 0.1)), mean
assert mean["label_noise", 0.4]["oracle"] - mean["label_noise", 0.4]["filtered"] > 0.05, mean
print(f"at 30% mismatched pairs, filtering gains {100 * (at30['filtered'] - at30['dirty']).mean():.1f} points")

# %% [markdown]
# ## 8. Explore: noise rates and thresholds
# Move the thresholds and the noise rates. The left panels show both scores split by the injected ground truth,
# with your thresholds; the right panel shows how clean the kept data is (precision), how much of the clean data
# survives (recall), and the test accuracy after training on the dirty data, on what your filter keeps, and on
# the truly clean items. A new noise setting takes about a second (a warm-up and three trainings); settings you
# have seen are cached.

# %%
# NBVAL_IGNORE_OUTPUT
from mmlab.lessons.pitfalls import quality_widget_figure

room = {"style": {"description_width": "initial"}, "layout": Layout(width="360px")}  # labels are never cut short
widget = interact(
    quality_widget_figure,
    agreement_threshold=FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05, description="agreement ≥", **room),
    loglik_threshold=FloatSlider(value=-2.3, min=-8.0, max=0.0, step=0.1, description="log p(y|x) ≥", **room),
    mismatch=FloatSlider(value=0.3, min=0.0, max=0.5, step=0.1, description="mismatched pairs", **room),
    label_noise=FloatSlider(value=0.2, min=0.0, max=0.4, step=0.1, description="wrong labels", **room),
    seed=Dropdown(options=[0, 1, 2], value=0, description="seed", **room),
    image_noise=fixed(0.6),
    warmup_epochs=fixed(8),
    epochs=fixed(40),
)

# %% [markdown]
# ## Exercises
# 1. **Width instead of depth.** Train `FusionStack(dims, 10, width=w, depth=1)` for `w` in 16, 64, 256, 1024 on
#    the 200 labelled items. Is the trend the same as for depth? Count the parameters.
# 2. **What else makes distillation work?** Re-run section 3 (a) with the light 1×64 model as the teacher,
#    (b) with `temperature=4`, (c) with `alpha=0.5`. Does the teacher's size matter?
# 3. **A Transformer stack.** Project each modality to a token of width 64, add a learned [CLS] token and stack
#    1–8 `nn.TransformerEncoderLayer(64, 4, batch_first=True, norm_first=True)`. Does depth hurt there?
#    (Expect it to cost much more CPU time.)
# 4. **Keep-fraction filtering.** If you knew that about 45% of the items are dirty, you could keep the best 55%
#    by each score with `filter_by_keep_fraction`. Compare it with the fixed thresholds of section 6.
# 5. **When is a mismatched pair harmless?** Repeat the 30%-mismatch run with `load_quality_data(image_noise=0.3)`
#    (a cleaner image). Compare the dirty and clean accuracies and explain what you see.
#
# ## Summary
# * On 200 labelled pairs, **stacking layers hurts**: every model fits the training set, and test accuracy falls
#   with depth (1 → 8 layers: more than 15 points on every seed). Residual blocks soften this but do not reverse it.
#   A wider model was no better, only bigger.
# * A **light model distilled from a bigger one** through unlabelled pairs beat itself trained alone and came close
#   to its teacher at 1/26 of the parameters; distilling on the labelled items alone gained much less. It did not
#   beat the shallow model trained directly: here the first fix is not to stack, distillation the way to go lighter.
# * **Dirty data costs accuracy**, wrong labels more than mismatched pairs. A short warm-up model finds both:
#   cross-modal **agreement** for mismatched pairs, the **small-loss** score for wrong labels (AUROC well above
#   0.5). Agreement is nearly blind to wrong labels; the small-loss score sees mismatched pairs less well.
# * **Filtering** on both scores recovers most of the loss, close to an oracle that knows the truth, except when
#   the dirt is so heavy (40% wrong labels) that it spoils the warm-up model too, or so light (10% mismatched
#   pairs) that there is nothing to recover. Score-weighted sampling helps less when labels are wrong. Check a
#   detector against a known ground truth before trusting it on data where you have none.
#
# Next: **Lesson 7 — a contrastive foundation model**, where the cross-modal space is learned from the pairs
# alone, so that every pair counts.
