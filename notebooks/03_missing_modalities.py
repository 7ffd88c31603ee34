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
# # Lesson 3 — Missing modalities: robustness you can measure
#
# **What you'll do:** take a recipe for "missing-modality compensation" that circulates online and watch it fail;
# train an image + audio classifier on complete data and measure how it collapses when a modality goes missing at
# test time; then train three repairs on top of modality dropout (ModDrop) — zero fill, a learned missing token,
# cross-modal reconstruction (a simplified MMIN) — test whether reconstruction helps for the reason it is said
# to, and compare them with one curve and one number each.
#
# **What you'll learn:** how to *simulate* missingness with a presence mask; why a model leans on one modality
# (and not necessarily the best one); why filling in a constant cannot add information; why the missingness you
# train with must match the missingness you test with; how to summarise robustness as an area under a curve.
#
# **What you'll need:** Lesson 0 (AV-Digits, `mmlab.train`). Runs on a laptop CPU in well under a minute.
# **Time:** ~40 minutes (including ~15 for the exercises).

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
from ipywidgets import FloatSlider, Layout
from mmlab.widgets import interact
from torch import nn
from tqdm.auto import tqdm

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
# statistics (mean and std of 20 coefficients over time), so that the many models of this lesson train quickly.
# The course's protocol: models train on **train**; every choice (the epoch to keep, the ModDrop rate) is made
# on **val** — new images and new recordings of the training voices — and **test** — new images and two voices
# never heard in training — reports. No noise knobs are needed: the held-out voices already make the two
# modalities unequal at test time.

# %%
from mmlab.lessons.missing import lesson_encoders, load_missing_data

data = load_missing_data()  # audio standardised with statistics from the training split only
X_train, X_test = data.train_inputs, data.test_inputs  # [image (N, 64), audio (N, 40)]
y_train, y_test = data.train_labels, data.test_labels
MODALITIES = list(data.modalities)
distinct_audio, distinct_images = len(torch.unique(X_train[1], dim=0)), len(torch.unique(X_train[0], dim=0))
print(f"train {len(y_train)} · val {len(data.val_labels)} · test {len(y_test)} · image {tuple(X_train[0].shape)}"
      f" · audio {tuple(X_train[1].shape)}")
print(f"distinct rows in train: audio {distinct_audio} · images {distinct_images}")
for m, enc in lesson_encoders().items():  # a small MLP per modality, each to a 32-d embedding
    layers = [
        f"Linear({x.in_features}→{x.out_features})" if isinstance(x, nn.Linear) else type(x).__name__ for x in enc.net
    ]
    print(f"{m} encoder:", " – ".join(layers))

# %% [markdown]
# First, each modality alone, over five seeds. `MissingModalityClassifier` (from `mmlab.missing`, used all
# lesson) is `head(concat(embeddings))`; with one encoder it is a plain unimodal classifier.
# `train_classifier` trains it with Adam through `mmlab.train.fit` (the course's one loop; here one progress bar
# per sweep of models replaces one bar per model);
# `train_missing_model(seed, data, ...)` (from `mmlab.lessons.missing`) builds a fresh model with that seed,
# trains it for up to 30 epochs, keeps the epoch whose **val** score is best (`robustness_score`: the
# accuracy for one modality; for two, the area under the accuracy-vs-missing-rate curve of section 6,
# averaged over the modalities), and only then scores **test** for every presence pattern
# (`accuracy_by_pattern`).

# %%
from mmlab.lessons.missing import robustness_score, train_missing_model
from mmlab.stats import format_spread, paired_bootstrap

SEEDS = [0, 1, 2, 3, 4]
EPOCHS = 30
alone_runs = {m: [] for m in MODALITIES}
for seed in tqdm(SEEDS, desc="each modality alone, 5 seeds"):  # one bar per sweep, not one per model
    for m in MODALITIES:
        trained = train_missing_model(seed, data, modalities=[m], epochs=EPOCHS, device=device, progress=False)
        alone_runs[m].append(trained)
alone_val = {m: np.array([r.val_acc[(True,)] for r in rs]) for m, rs in alone_runs.items()}
alone_acc = {m: np.array([r.pattern_acc[(True,)] for r in rs]) for m, rs in alone_runs.items()}
alone_loss = {m: [r.history["ce"] for r in rs] for m, rs in alone_runs.items()}  # training cross-entropy per epoch
for m in MODALITIES:
    print(f"{m:5s} alone: VAL (training voices) {format_spread(alone_val[m], 100, '%')} · "
          f"TEST (unseen voices) {format_spread(alone_acc[m], 100, '%')}")

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
    title="Audio is fitted far faster than images (train split, 5 seeds)",
)

# %% [markdown]
# Two facts pull in opposite directions. On **test** data (new voices) the image is the stronger modality. On
# **training** data audio is far easier: the training split holds only 180 distinct clips (6 voices × 10
# digits × 3 speed/pitch settings) for its 1,078 items, so audio is memorised within a few epochs while images
# take much longer. Val cannot see the difference: with the training voices, audio alone is as good as the
# image alone or better — only a new voice reveals the weakness. A model trained on both will lean on whatever
# lowers the training loss fastest — audio. (Lesson 4 studies this imbalance; here we watch its consequence.)

# %%
loss_at_5 = {m: np.array([h[4] for h in alone_loss[m]]) for m in MODALITIES}
image_vs_audio = paired_bootstrap(alone_acc["image"], alone_acc["audio"])
print("training loss after 5 epochs:", {m: np.round(v, 3) for m, v in loss_at_5.items()})
print(f"TEST, image alone - audio alone: {image_vs_audio.format(100, ' pts')}")
assert image_vs_audio.low > 0.1, image_vs_audio  # image stronger at test time, by more than 10 points
assert alone_val["audio"].mean() > alone_val["image"].mean() - 0.01, alone_val  # ... but not on val
assert (loss_at_5["audio"] < 0.6 * loss_at_5["image"]).all(), loss_at_5  # audio fitted faster, every seed
assert distinct_audio == 180 and distinct_images == len(y_train)  # few clips, repeated

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
# modality give the whole curve: `accuracy_by_pattern` measures every presence pattern once. (The fill is not
# chosen here: both are shown.)


# %%
from mmlab.missing import accuracy_by_pattern


def run_full(seed, **kwargs):
    """Train one two-modality model with this seed (epoch kept on val); return the whole `MissingRun`."""
    return train_missing_model(seed, data, epochs=EPOCHS, device=device, progress=False, **kwargs)


def run(seed, **kwargs):
    """Train one two-modality model with this seed (epoch kept on val); return it and its TEST accuracy per
    presence pattern."""
    trained = run_full(seed, **kwargs)
    return trained.model, trained.pattern_acc


BOTH, IMAGE_ONLY, AUDIO_ONLY = (True, True), (True, False), (False, True)
results = {"full data, zero fill": [], "full data, mean fill": []}
full_models = []
for seed in tqdm(SEEDS, desc="complete data, 5 seeds"):
    model, acc = run(seed, fill="zero")
    results["full data, zero fill"].append(acc)
    model.set_fill_mean(*X_train)  # mean embedding over the training split
    model.fill = "mean"
    results["full data, mean fill"].append(accuracy_by_pattern(model, X_test, y_test))
    model.fill = "zero"
    full_models.append(model)


def per_seed(name, pattern):
    """A method's TEST accuracy for one presence pattern, one value per seed."""
    return np.array([acc[pattern] for acc in results[name]])


def pattern_mean(name, pattern):
    """Mean over seeds of a method's TEST accuracy for one presence pattern."""
    return per_seed(name, pattern).mean()


print("TEST (unseen voices), mean over 5 seeds")
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
print(f"TEST, audio missing at 50%: sampled mask {100 * sampled:.1f}% · straight line {100 * predicted:.1f}%")
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


curves_figure(list(results), "Trained on complete data: collapse when audio goes missing (TEST, 5 seeds)")

# %%
full = "full data, zero fill"
below_audio = paired_bootstrap(per_seed(full, IMAGE_ONLY), alone_acc["audio"])
below_image = paired_bootstrap(per_seed(full, IMAGE_ONLY), alone_acc["image"])
near_audio = paired_bootstrap(per_seed(full, AUDIO_ONLY), alone_acc["audio"])
mean_vs_zero = paired_bootstrap(per_seed("full data, mean fill", IMAGE_ONLY), per_seed(full, IMAGE_ONLY))
mean_vs_image = paired_bootstrap(per_seed("full data, mean fill", IMAGE_ONLY), alone_acc["image"])
print("TEST, paired over seeds:")
print(f"  audio missing (zero fill) - audio alone: {below_audio.format(100, ' pts')}")
print(f"  audio missing (zero fill) - image alone: {below_image.format(100, ' pts')}")
print(f"  image missing (zero fill) - audio alone: {near_audio.format(100, ' pts')}")
print(f"  audio missing, mean fill - zero fill:    {mean_vs_zero.format(100, ' pts')}")
print(f"  audio missing, mean fill - image alone:  {mean_vs_image.format(100, ' pts')}")

# %% [markdown]
# **What the seeds show** (paired 95% intervals over 5 seeds, margins stated):
# * With **audio missing**, the complete-data model drops far below what the image does *alone* (by more than
#   35 points) — and, with a zero fill, even below the weaker audio modality alone (by more than 10 points).
#   The image evidence is there; the model never learned to decide from it.
# * With **image missing**, it lands near the audio-alone level: the interval of the difference lies within
#   ±10 points (two-sided): it was leaning on audio anyway.
# * The mean fill helps a lot over the zero fill (more than 10 points), yet stays far from the image-alone
#   ceiling (more than 20 points below). The head here is linear, so any constant fill only adds a constant
#   vector to the logits: it can *shift the class prior* (and a zero embedding, never seen in training, shifts
#   it badly), but it cannot add information.

# %%
assert below_audio.high < -0.1, below_audio  # audio missing: below even audio alone
assert below_image.high < -0.35, below_image  # ... and far below the image's own level
assert near_audio.low > -0.1 and near_audio.high < 0.1, near_audio  # image missing: near audio alone, two-sided
assert mean_vs_zero.low > 0.1, mean_vs_zero
assert mean_vs_image.high < -0.2, mean_vs_image

# %% [markdown]
# ## 6. The methods that work: train under missingness
# **Modality dropout** (ModDrop, Neverova et al., TPAMI 2016): during training, drop whole modalities at random,
# exactly as they will go missing at test time. In `mmlab` it is a layer, like `nn.Dropout`: in training mode
# `ModalityDropout(rates)` ANDs the presence mask with a fresh `sample_presence(batch, rates)`; in eval mode it
# does nothing. Three ways to fill what was dropped:
#
# * **zero fill** — plain ModDrop;
# * **learned missing token** — a trained vector $t_m$ per modality, $\tilde z_m = p_m z_m + (1-p_m) t_m$, like
#   BERT's `[MASK]` embedding;
# * **cross-modal reconstruction**, a simplified MMIN (Zhao, Li & Jin, ACL 2021): one residual autoencoder
#   predicts the missing embedding from the present ones, $\hat z = \tilde z + \mathrm{Dec}(\mathrm{Enc}([\tilde
#   z;\, p]))$, trained against the embedding the full input actually has:
#   $$\mathcal L = \mathrm{CE}(y, \mathrm{head}(\hat z)) + \lambda\, \frac{1}{n_{\text{miss}}\, d}
#   \sum_{i,m:\ p_{im}=0} \lVert \hat z_{im} - \mathrm{sg}(z_{im}) \rVert^2 , \qquad \lambda = 1,$$
#   where $\mathrm{sg}$ stops the gradient, so the encoders are not pulled toward easy-to-predict embeddings.
#   *Simplified* relative to MMIN: MMIN cascades several residual autoencoders and adds a backward imagination
#   (imagined → present) with a cycle-consistency loss; its targets come from encoders pretrained on full data
#   and its classifier reads the autoencoders' latent codes; it trains on every missing pattern of three
#   modalities. Ours is one autoencoder imagining one modality from the other, trained jointly with encoders
#   whose own (detached) embeddings are the targets, and the head reads the completed embeddings.
#
# The reference that needs no cleverness, at three times the cost: **one model per pattern** — the image-alone
# model when audio is missing, the audio-alone model when the image is missing, the complete-data model otherwise.
#
# **First, the ModDrop rate, chosen on val.** Plain ModDrop (zero fill) at training rates 0.2, 0.5 and 0.8 per
# modality, 3 seeds each; the rate with the best mean val score is used for every ModDrop model below. The cell
# that picks it sees val scores only: the test numbers of §3 and §5 belong to fixed recipes (their one choice,
# the epoch, was made on val), and no ModDrop model has been scored on test yet.

# %%
RATE_CANDIDATES = [0.2, 0.5, 0.8]
rate_runs = {
    r: [run_full(s, fill="zero", train_rates=(r, r)) for s in SEEDS[:3]]
    for r in tqdm(RATE_CANDIDATES, desc="ModDrop rates, 3 seeds each")
}
rate_val = {r: np.array([robustness_score(x.val_acc) for x in rs]) for r, rs in rate_runs.items()}
print("VAL score (mean robustness AUC, training voices), 3 seeds:")
for r in RATE_CANDIDATES:
    print(f"  ModDrop rate {r:.1f}: {format_spread(rate_val[r], 100, '%')}")
RATE = max(RATE_CANDIDATES, key=lambda r: rate_val[r].mean())
TRAIN_RATES = (RATE, RATE)
print(f"chosen on val: ModDrop rate {RATE}")
assert max(v.mean() for v in rate_val.values()) - min(v.mean() for v in rate_val.values()) < 0.01, rate_val

# %% [markdown]
# On val the three rates lie within 1 point of each other (val uses the training voices, on which audio alone
# is near perfect), so val can barely tell them apart; the choice is made on val all the same, by the rule
# fixed above, and nothing after it is chosen.
#
# Now the three ModDrop methods at that rate, 5 seeds each, and a **control** for reconstruction: the same
# model — same reconstruction network, same capacity, same seeds — with the reconstruction loss weight
# $\lambda$ set to 0, so its reconstructor is trained by the classification loss alone. If reconstruction helps
# because it *transfers knowledge* from one modality's embedding into the other's pathway, the control should
# lose that help; if the extra network is all that helps, the control should keep it.

# %%
methods = {
    "ModDrop, zero fill": dict(fill="zero", train_rates=TRAIN_RATES),
    "ModDrop, learned token": dict(fill="token", train_rates=TRAIN_RATES),
    "ModDrop, reconstruction": dict(fill="reconstruct", train_rates=TRAIN_RATES),
    "control: reconstruction, λ = 0": dict(fill="reconstruct", train_rates=TRAIN_RATES, recon_weight=0.0),
}
recon_models = []
for name, kwargs in tqdm(methods.items(), desc="ModDrop methods, 5 seeds each"):
    results[name] = []
    for seed in SEEDS:
        if name == "ModDrop, zero fill" and seed < 3:  # trained in the rate choice above
            trained = rate_runs[RATE][seed]
            model, acc = trained.model, trained.pattern_acc
        else:
            model, acc = run(seed, **kwargs)
        results[name].append(acc)
        if name == "ModDrop, reconstruction":
            recon_models.append(model)
results["one model per pattern"] = [
    {BOTH: f[BOTH], IMAGE_ONLY: float(i), AUDIO_ONLY: float(a)}
    for f, i, a in zip(results[full], alone_acc["image"], alone_acc["audio"])
]

# %%
curves_figure(list(results), "Accuracy vs test-time missing rate (TEST, 5 seeds; mean ± std)")

# %% [markdown]
# One number per method: the **area under the accuracy-vs-missing-rate curve**, divided by the range of rates —
# the mean accuracy over missing rates from 0 to 1 (`robustness_auc`, trapezoid rule); 1 would be perfect
# whatever goes missing. Because each curve here is a straight line, this area is simply the mean of its two
# end points, $(\text{acc(all)} + \text{acc(without } m))/2$: a convenient summary, not extra information.

# %%
from mmlab.missing import robustness_auc

auc = {
    name: np.array([[robustness_auc(RATES, missing_rate_curve(a, k, RATES)) for k in range(2)] for a in accs])
    for name, accs in results.items()
}
ends = np.array([[(a[BOTH] + a[AUDIO_ONLY]) / 2, (a[BOTH] + a[IMAGE_ONLY]) / 2] for a in results[full]])
assert np.allclose(auc[full], ends)  # straight lines: the area is the mean of the end points
print("TEST (unseen voices), 5 seeds: mean ± std (min–max)")
print(f"{'method':31s} {'both present':>24s} {'AUC, image missing':>24s} {'AUC, audio missing':>24s}")
for name, a in auc.items():
    both = np.array([acc[BOTH] for acc in results[name]])
    print(f"{name:31s} " + " ".join(f"{format_spread(v, 100, '%'):>24s}"[:24] for v in (both, a[:, 0], a[:, 1])))

# %%
recon, zero, token, control = (
    "ModDrop, reconstruction", "ModDrop, zero fill", "ModDrop, learned token", "control: reconstruction, λ = 0"
)
trained = [zero, token, recon]
vs_full_auc = {n: paired_bootstrap(auc[n].mean(1), auc[full].mean(1)) for n in trained}
vs_image = {n: paired_bootstrap(per_seed(n, IMAGE_ONLY), alone_acc["image"]) for n in trained}
vs_audio = {n: paired_bootstrap(per_seed(n, AUDIO_ONLY), alone_acc["audio"]) for n in trained}
vs_full_both = {n: paired_bootstrap(per_seed(n, BOTH), per_seed(full, BOTH)) for n in trained}
fills_both = {n: paired_bootstrap(per_seed(n, BOTH), per_seed(zero, BOTH)) for n in (token, recon)}
fills_image = {n: paired_bootstrap(per_seed(n, IMAGE_ONLY), per_seed(zero, IMAGE_ONLY)) for n in (token, recon)}
recon_vs_zero = paired_bootstrap(per_seed(recon, AUDIO_ONLY), per_seed(zero, AUDIO_ONLY))
zero_vs_token = paired_bootstrap(per_seed(zero, AUDIO_ONLY), per_seed(token, AUDIO_ONLY))
recon_vs_control = paired_bootstrap(per_seed(recon, AUDIO_ONLY), per_seed(control, AUDIO_ONLY))
control_vs_zero = paired_bootstrap(per_seed(control, AUDIO_ONLY), per_seed(zero, AUDIO_ONLY))
print("TEST, paired over 5 seeds:")
for n in trained:
    print(f"  {n}: mean AUC - complete-data model {vs_full_auc[n].format(100, ' pts')}")
    print(f"    audio missing - image alone {vs_image[n].format(100, ' pts')}; "
          f"image missing - audio alone {vs_audio[n].format(100, ' pts')}")
    print(f"    both present - complete-data model {vs_full_both[n].format(100, ' pts')}")
for n in (token, recon):
    print(f"  {n} - zero fill: both present {fills_both[n].format(100, ' pts')}; "
          f"audio missing {fills_image[n].format(100, ' pts')}")
print(f"  image missing: reconstruction - zero fill {recon_vs_zero.format(100, ' pts')}")
print(f"  image missing: zero fill - learned token {zero_vs_token.format(100, ' pts')}")
print(f"  image missing: reconstruction - control (λ = 0) {recon_vs_control.format(100, ' pts')}")
print(f"  image missing: control (λ = 0) - zero fill {control_vs_zero.format(100, ' pts')}")

# %% [markdown]
# **What the seeds show** (paired 95% bootstrap intervals over 5 seeds on test; each claim's margin is stated
# and asserted below). How these numbers are made and what the asserts certify:
# [How this course measures](00_setup.ipynb#How-this-course-measures).
# * Every ModDrop-trained model has a far larger area under the curve than the complete-data model (by more
#   than 10 points).
# * With audio missing they stay near the image-alone ceiling (within ±3 points, two-sided); with the image
#   missing they are no worse than audio alone (lower bound above −5 points; zero fill and reconstruction are
#   in fact above it) — with one network instead of three specialists.
# * ModDrop also wins when *nothing* is missing (by more than 3 points). A plausible reason, consistent with
#   section 3 but not tested here: dropping audio often forces the image encoder to be useful on its own, so the
#   fused model stops over-trusting audio, which transfers poorly to new voices.
# * Among the three fills, with both present or with audio missing, the differences are small: every paired
#   interval against zero fill lies within ±3 points. With the **image missing**, the learned token is worse
#   than zero fill (by more than 2 points); reconstruction is *not* shown to beat zero fill — its interval
#   does not clear a margin of 1 point (at the ModDrop rate chosen on val; an earlier version of this lesson
#   claimed it did, with no margin).
# * **The control**: the same reconstruction network with its loss switched off ($\lambda = 0$, same capacity,
#   same seeds) is *worse* than zero fill with the image missing, and reconstruction with $\lambda = 1$ beats
#   its $\lambda = 0$ twin (both by more than 0.5 points). So the extra network, trained by the classification
#   loss alone, hurts; the reconstruction target — predicting the image embedding from audio — is what makes
#   it pay its way. That is evidence that the target matters, not capacity; it is not evidence that
#   reconstruction transfers knowledge *beyond* plain ModDrop, which these seeds do not show.

# %%
for n in trained:
    assert vs_full_auc[n].low > 0.1, (n, vs_full_auc[n])
    assert vs_image[n].low > -0.03 and vs_image[n].high < 0.03, (n, vs_image[n])  # near the image ceiling
    assert vs_audio[n].low > -0.05, (n, vs_audio[n])  # no worse than audio alone (margin 5 points)
    assert vs_full_both[n].low > 0.03, (n, vs_full_both[n])  # better even with nothing missing
for n in (token, recon):
    for ci in (fills_both[n], fills_image[n]):
        assert ci.low > -0.03 and ci.high < 0.03, (n, ci)  # "differences small", two-sided
assert vs_audio[zero].low > 0 and vs_audio[recon].low > 0, vs_audio  # "in fact above it"
assert zero_vs_token.low > 0.02, zero_vs_token
assert recon_vs_zero.low < 0.01, recon_vs_zero  # not shown: the interval does not clear the 1-point margin
assert control_vs_zero.high < -0.005, control_vs_zero  # the extra network without its target hurts
assert recon_vs_control.low > 0.005, recon_vs_control  # the target is what matters

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
            recon_err = reconstruction_loss(model.complete(z_test, present), z_test, present)
            guess = reconstruction_loss([z_mean[j].expand_as(z) for j, z in enumerate(z_test)], z_test, present)
            row.append((recon_err / guess).item())
        rel.append(row)
rel = np.array(rel)
for k, m in enumerate(MODALITIES):
    print(f"TEST, {m} reconstructed from {MODALITIES[1 - k]}: error / mean-guess error = "
          f"{format_spread(rel[:, k], digits=2)}")
assert (rel < 0.8).all(), rel

# %% [markdown]
# ## 7. The trap: train with one missingness pattern, test with another
# ModDrop only protects against the missingness it simulates. Suppose the training team knew cameras fail and
# dropped only the *image* in training (at the rate chosen above, audio never); in deployment the microphone
# fails instead.

# %%
trap = "trap: ModDrop on image only"
results[trap] = [run(seed, fill="zero", train_rates=(RATE, 0.0))[1] for seed in tqdm(SEEDS, desc="trap, 5 seeds")]
for name in (full, zero, trap):
    print(
        f"TEST {name:28s} audio missing {100 * pattern_mean(name, IMAGE_ONLY):5.1f}%"
        f" · image missing {100 * pattern_mean(name, AUDIO_ONLY):5.1f}%"
    )
trap_audio_missing = paired_bootstrap(per_seed(trap, IMAGE_ONLY), per_seed(zero, IMAGE_ONLY))
trap_image_missing = paired_bootstrap(per_seed(trap, AUDIO_ONLY), per_seed(zero, AUDIO_ONLY))
print(f"trap - ModDrop: audio missing {trap_audio_missing.format(100, ' pts')}; "
      f"image missing {trap_image_missing.format(100, ' pts')}")

# %% [markdown]
# Against the failure it trained for (image missing) the trap model is about as robust as full ModDrop (the
# paired interval lies within ±5 points); against the other one (audio missing) it is far below it (by more
# than 15 points), because it never had to classify from the image alone. Simulate in training the missingness
# you expect at test time — for every modality that can go missing.

# %%
assert trap_audio_missing.high < -0.15, trap_audio_missing
assert trap_image_missing.low > -0.05 and trap_image_missing.high < 0.05, trap_image_missing

# %% [markdown]
# ## 8. Explore: missing rates in, accuracy out
# Set how often each modality is missing at test time; the bars show each method's expected **test** accuracy
# (mean ± std over the 5 seeds), computed from the per-pattern accuracies above (no sampling, nothing
# retrained). The
# title shows the realised missing rates (a sample never loses both modalities).

# %%
# NBVAL_IGNORE_OUTPUT
from mmlab.missing import missing_rates_figure


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
# Code exercises are checked on the spot; the solutions are in collapsed cells (click to reveal in JupyterLab;
# in Colab, 'Show code'). Try first.
#
# **Exercise 1 — the presence mask of modality dropout.** Write `sample_presence_mask(batch_size, rates,
# generator)`: section 4's mask, a bool tensor (B, M), True = present, where modality $m$ is dropped with
# probability `rates[m]`, independently for every sample and modality, and a row that lost everything gets one
# modality back, modality $m$ with probability $\propto 1 - r_m$. Draw every random number from `generator`.
# *Why it matters:* this mask *is* ModDrop. Drop with the wrong probability and training simulates a
# missingness other than the one you test (section 7's trap); leave a row empty and the model is asked to
# classify from nothing. The checker draws 20,000 rows and compares the missing rates with section 4's formula.
# *Hint:* one `torch.rand(batch_size, M, generator=generator)` compared with the rates; for the empty rows,
# `torch.multinomial` on the weights $1 - r_m$, with the same generator.


# %%
# ✏️ Exercise 1: your code here
def sample_presence_mask(batch_size, rates, generator):
    """A presence mask for modality dropout: bool tensor (batch_size, M), True = present.

    rates: list of M missing rates; modality m is dropped with probability rates[m], independently per sample
    and modality, with every random number drawn from `generator`. A row that lost every modality gets one back,
    modality m with probability ∝ 1 - rates[m] (torch.multinomial).
    """
    raise NotImplementedError


# %%
from mmlab.exercises import check_presence_mask, check_token_fill

check_presence_mask(sample_presence_mask)


# %% tags=["solution"] jupyter={"source_hidden": true}
# @title Solution { display-mode: "form" }
def sample_presence_mask(batch_size, rates, generator):
    """Presence mask (B, M), True = present: modality m dropped with probability rates[m]; never an empty row."""
    r = torch.as_tensor(rates, dtype=torch.float64)  # (M,) missing rates
    num_modalities = len(r)
    # one uniform number per sample *and* modality, all from `generator`: independent drops, reproducible
    u = torch.rand(batch_size, num_modalities, generator=generator, dtype=torch.float64)
    present = u >= r  # P(u < r_m) = r_m is the chance of being dropped, so "u >= r_m" keeps with 1 - r_m
    empty = ~present.any(dim=1)  # rows that lost every modality
    n_empty = int(empty.sum())
    if n_empty > 0:
        # give each empty row one modality back, m with probability ∝ 1 - r_m (multinomial normalises the weights)
        weights = (1 - r).expand(n_empty, num_modalities)
        back = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # (n_empty,) modality indices
        present[empty] = torch.arange(num_modalities) == back[:, None]  # one-hot rows: exactly that modality
    return present


check_presence_mask(sample_presence_mask)

# %% [markdown]
# **Exercise 2 — fill with a learned token.** Write `fill_with_token(z, present, token)`: section 6's
# $\tilde z_m = p_m z_m + (1 - p_m)\, t_m$ for one modality. `z` is that modality's embeddings (B, d),
# `present` a bool vector (B,), `token` the learned vector $t_m$ (d,). Return a new tensor; do not modify `z`.
# *Why it matters:* the token is a parameter and learns only through the rows it replaces. If it is detached,
# replaced by zeros, or mixed into present rows, it either never trains or corrupts embeddings that were there.
# The checker also checks the gradients: the token must receive exactly the missing rows' gradients, and `z`
# none at those rows. *Hint:* `present` has one entry per sample and the token one per feature: shape the mask
# (B, 1).


# %%
# ✏️ Exercise 2: your code here
def fill_with_token(z, present, token):
    """Replace one modality's missing embeddings with a learned token.

    z: tensor (B, d); present: bool tensor (B,), True = present; token: tensor (d,) (an nn.Parameter).
    Returns a new tensor (B, d): row i is z[i] if present[i], else token. Gradients must reach the token.
    """
    raise NotImplementedError


# %%
check_token_fill(fill_with_token)


# %% tags=["solution"] jupyter={"source_hidden": true}
# @title Solution { display-mode: "form" }
def fill_with_token(z, present, token):
    """z where the modality is present, the learned token where it is missing: a new (B, d) tensor."""
    # present[:, None] is (B, 1): one decision per sample, broadcast over the d features; token (d,) broadcasts
    # over the rows. torch.where builds a new tensor (z is untouched) and sends each output row's gradient to
    # exactly one source: z[i] where present, the token where missing. (The arithmetic form p·z + (1-p)·t gives
    # the same values, but a NaN or inf in a missing row of z would leak through 0·z.)
    return torch.where(present[:, None], z, token)


check_token_fill(fill_with_token)

# %% [markdown]
# **Exercise 3 — training rate.** Section 6 chose the ModDrop rate on val among 0.2, 0.5 and 0.8. Train ModDrop
# at unequal rates, e.g. `(0.2, 0.8)` and `(0.8, 0.2)`, and compare on **val** first, then on test. Does val
# (training voices) rank them as test (new voices) does? Why might it not?
#
# <details><summary>Answer</summary>
#
# How to find out: `run_full(seed, fill="zero", train_rates=(0.2, 0.8))` and `(0.8, 0.2)` (the order is
# `MODALITIES`: image, then audio) for the 5 seeds; compare `robustness_score(trained.val_acc)` on val, choose,
# and only then compare the test AUCs with paired intervals, as in section 6. What to look for: val holds the
# training voices, on which audio alone is near perfect, and it could barely separate the rates 0.2, 0.5 and 0.8
# (within 1 point, asserted in section 6); test holds new voices, on which the image is the stronger modality
# (by more than 10 points, section 3). `(0.2, 0.8)` drops audio more often and so makes the model decide from
# the image more often — the modality that transfers — but val cannot reward that, because it never hears a new
# voice. If val and test rank the two settings differently, the voice shift is the reason to suspect first;
# check that the difference clears a margin over the seeds before you believe either ranking.
# </details>
#
# **Exercise 4 — fill at the input.** `mmlab.missing.zero_fill` and `mean_fill` work on any `(batch, ...)`
# tensor. Take a complete-data model and fill the *raw* image (a blank image, or the mean image) instead of its
# embedding. Does the blank image behave like the zero embedding?
#
# <details><summary>Answer</summary>
#
# It need not. The image encoder maps a blank image to $\mathrm{enc}(0)$, which its biases make non-zero (and
# its final ReLU keeps non-negative), so a blank image is *not* the zero embedding; likewise the mean image maps
# to $\mathrm{enc}(\bar x)$, not to the mean embedding, because the encoder is non-linear
# ($\mathrm{enc}(\mathbb E[x]) \ne \mathbb E[\mathrm{enc}(x)]$). Each is one more constant the head never saw in
# training. To measure it: with `present` all False for the image, compute
# `full_models[s](zero_fill(X_test[0], present), X_test[1])` (inputs on `device`; and `mean_fill` with
# `X_train[0].mean(0)`), take the accuracy per seed, and compare each with section 5's zero- and mean-embedding fills with `paired_bootstrap`.
# </details>
#
# **Exercise 5 — a non-linear head.** Build the models with `hidden=64` (an MLP head). Does the gap between zero
# and mean fill for the complete-data model change? Why could it, now that a constant no longer just shifts the
# logits?
#
# <details><summary>Answer</summary>
#
# With the linear head, a constant fill $v$ adds the constant $W_m v$ to the logits (section 5): it can only
# shift the class prior. With `hidden=64` the fill's contribution is added *before* a ReLU, so it changes which
# hidden units are active for each sample: it interacts with the present modality's embedding, and the choice
# of fill can now change decisions sample by sample, not only the prior. The zero-vs-mean gap can therefore grow
# or shrink; which one happens here is measured, not derived: `run(seed, fill="zero", hidden=64)` for the 5 seeds,
# the mean fill evaluated as in section 5, and the paired interval of mean − zero with audio missing compared
# with the linear head's (more than 10 points, asserted in section 5).
# </details>
#
# **Exercise 6 — three modalities.** Add the captions of Lesson 0 (`text_noise=0.6`) as a third modality. How
# many presence patterns are there, and how many specialist models would "one model per pattern" need?
#
# <details><summary>Answer</summary>
#
# Each modality is present or not: $2^3 = 8$ patterns, minus the empty one that the mask never produces, so
# **7 presence patterns**: 3 with one modality, 3 with two, 1 with all three. "One model per pattern" needs
# **7 specialist models** (in general $2^M - 1$), against one ModDrop model whatever $M$. ModDrop must then
# simulate all 7 patterns in training: with independent drops every pattern occurs as long as no rate is 0 or 1.
# </details>
#
# ## Check your understanding
# 1. **Derivation: the straight line.** Modality $m$ is missing independently with probability $r$ for each test
#    sample, the other modality always present. Show that the expected accuracy is
#    $(1-r)\,\text{acc(all)} + r\,\text{acc(without } m)$, and that its area over $r \in [0, 1]$ is the mean of
#    the two end points.
#
#    <details><summary>Answer</summary>
#
#    The model classifies each sample on its own, so sample $i$ is correct with probability
#    $(1-r)\,c_i^{\text{all}} + r\,c_i^{\text{without }m}$, where $c_i \in \{0, 1\}$ says whether it is correct
#    with that presence pattern. Accuracy is the mean of these indicators over the $N$ test samples, and the
#    expectation of a mean is the mean of the expectations (linearity; independence is not even needed):
#    $\mathbb E[\text{acc}] = (1-r)\,\frac1N\sum_i c_i^{\text{all}} + r\,\frac1N\sum_i c_i^{\text{without }m}
#    = (1-r)\,\text{acc(all)} + r\,\text{acc(without } m)$. Its integral over $[0, 1]$ is
#    $\int_0^1 (1-r)\,a + r\,b \;dr = (a + b)/2$. One sampled mask fluctuates around the line (a binomial
#    spread over $N$ samples), which is why section 5 compared a sampled mask with the line with a tolerance.
#    </details>
#
# 2. Section 4 drew masks with rates $(0.6, 0.5)$. Derive the realised missing rates.
#
#    <details><summary>Answer</summary>
#
#    Modality $m$ ends up missing if it was dropped and *not* given back:
#    $r'_m = r_m - P(\text{all dropped})\, P(m \text{ given back} \mid \text{all dropped})
#    = r_m - \prod_k r_k \cdot \frac{1 - r_m}{\sum_k (1 - r_k)}$. With $\prod_k r_k = 0.3$ and
#    $\sum_k (1 - r_k) = 0.9$: image $0.6 - 0.3 \cdot 0.4 / 0.9 \approx 0.467$, audio
#    $0.5 - 0.3 \cdot 0.5 / 0.9 \approx 0.333$ — what section 4 measured on 100,000 rows (asserted within 0.01).
#    </details>
#
# 3. A learned token is trained on complete data only (ModDrop rate 0). What does it learn?
#
#    <details><summary>Answer</summary>
#
#    Nothing: its gradient is the sum of the upstream gradients of the rows it replaced (Exercise 2's checker
#    tests exactly this), and with complete data it replaces none. It keeps its initial value — the same failure
#    as the recipe's compensation layers in section 2, which never received a gradient.
#    </details>

# %% [markdown]
# ## Summary
# * A model trained on complete data leans on the modality that is easiest *to fit*, here audio from a few
#   training voices — not the one that is best at test time. Take it away and accuracy collapses below what the
#   remaining modality achieves alone.
# * A constant fill (zero, mean) cannot add information; it can only avoid misleading the head.
# * Modality dropout — training under the missingness you expect — is what buys robustness; a learned token or a
#   cross-modal reconstruction on top are cheap. Reconstruction did not measurably beat plain ModDrop here;
#   its control (the same network with the reconstruction loss off) was worse than both: the reconstruction
#   target, not the extra capacity, is what makes the extra network pay its way.
# * Protocol: the epoch of every model and the ModDrop rate were chosen on val (training voices, new
#   recordings); test (new voices) was scored after. Val could not see the voice shift that makes audio weak.
# * Robustness is a curve, not a number at one missing rate: report accuracy against the missing rate of each
#   modality, its area (for these straight lines, the mean of the two end points), and the unimodal ceilings. Next: **Lesson 4 — imbalance and loss balancing**.

# %% [markdown]
# ## References
# **Methods used in this lesson**
# * N. Neverova, C. Wolf, G. Taylor, F. Nebout. *ModDrop: Adaptive Multi-Modal Gesture Recognition.* IEEE TPAMI
#   38(8), 2016. [arXiv:1501.00102](https://arxiv.org/abs/1501.00102)
# * J. Zhao, R. Li, Q. Jin. *Missing Modality Imagination Network for Emotion Recognition with Uncertain Missing
#   Modalities* (MMIN). ACL-IJCNLP 2021. [doi:10.18653/v1/2021.acl-long.203](https://doi.org/10.18653/v1/2021.acl-long.203)
# * L. Tran, X. Liu, J. Zhou, R. Jin. *Missing Modalities Imputation via Cascaded Residual Autoencoder.* CVPR
#   2017. [CVF open access](https://openaccess.thecvf.com/content_cvpr_2017/html/Tran_Missing_Modalities_Imputation_CVPR_2017_paper.html)
#   (the residual autoencoders MMIN builds on)
# * J. Devlin, M.-W. Chang, K. Lee, K. Toutanova. *BERT: Pre-training of Deep Bidirectional Transformers for
#   Language Understanding.* NAACL 2019. [arXiv:1810.04805](https://arxiv.org/abs/1810.04805) (the learned
#   `[MASK]` embedding behind the missing token)
# * N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov. *Dropout: A Simple Way to Prevent
#   Neural Networks from Overfitting.* JMLR 15, 2014. [jmlr.org](https://jmlr.org/papers/v15/srivastava14a.html)
# * D. P. Kingma, J. Ba. *Adam: A Method for Stochastic Optimization.* ICLR 2015.
#   [arXiv:1412.6980](https://arxiv.org/abs/1412.6980)
# * B. Efron. *Bootstrap Methods: Another Look at the Jackknife.* Annals of Statistics 7(1), 1979.
#   [doi:10.1214/aos/1176344552](https://doi.org/10.1214/aos/1176344552) (the paired intervals over seeds)
# * D. B. Rubin. *Inference and Missing Data.* Biometrika 63(3), 1976.
#   [doi:10.1093/biomet/63.3.581](https://doi.org/10.1093/biomet/63.3.581) (missing completely at random — what
#   this lesson's independent drops simulate — vs at random vs not at random)
#
# **Data**
# * AV-Digits, this course's set (see `data/README.md`), built the way AV-MNIST is: V. Vielzeuf, A. Lechervy,
#   S. Pateux, F. Jurie. *CentralNet: a Multilayer Approach for Multimodal Fusion.* ECCV Workshops 2018.
#   [arXiv:1808.07275](https://arxiv.org/abs/1808.07275)
# * Images: E. Alpaydin, C. Kaynak. *Optical Recognition of Handwritten Digits.* UCI Machine Learning Repository,
#   1998. [archive.ics.uci.edu](https://archive.ics.uci.edu/ml/datasets/optical+recognition+of+handwritten+digits),
#   as shipped by scikit-learn's `load_digits` (F. Pedregosa et al., *Scikit-learn: Machine Learning in Python*,
#   JMLR 12, 2011, [jmlr.org](https://jmlr.org/papers/v12/pedregosa11a.html)).
# * Speech: synthesised with [eSpeak NG](https://github.com/espeak-ng/espeak-ng); MFCC statistics (S. Davis,
#   P. Mermelstein, IEEE Trans. ASSP 28(4), 1980, [doi:10.1109/TASSP.1980.1163420](https://doi.org/10.1109/TASSP.1980.1163420)).
#
# **Alternatives worth knowing**
# * M. Havaei, N. Guizard, N. Chapados, Y. Bengio. *HeMIS: Hetero-Modal Image Segmentation.* MICCAI 2016.
#   [arXiv:1607.05194](https://arxiv.org/abs/1607.05194) (fuse whatever is present by statistics over the
#   available modalities' features)
# * M. Ma, J. Ren, L. Zhao, S. Tulyakov, C. Wu, X. Peng. *SMIL: Multimodal Learning with Severely Missing
#   Modality.* AAAI 2021. [arXiv:2103.05677](https://arxiv.org/abs/2103.05677) (missing modalities in *training*
#   too, via Bayesian meta-learning)
# * M. Ma, J. Ren, L. Zhao, D. Testuggine, X. Peng. *Are Multimodal Transformers Robust to Missing Modality?*
#   CVPR 2022. [arXiv:2204.05454](https://arxiv.org/abs/2204.05454)
# * Y.-L. Lee, Y.-H. Tsai, W.-C. Chiu, C.-Y. Lee. *Multimodal Prompting with Missing Modalities for Visual
#   Recognition.* CVPR 2023. [arXiv:2303.03369](https://arxiv.org/abs/2303.03369) (missing-aware prompts for a
#   frozen pretrained transformer)
