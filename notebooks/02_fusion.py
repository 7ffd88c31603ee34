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
# # Lesson 2 — Efficient fusion: tensor fusion, low-rank fusion, and what they cost
#
# **What you'll do:** re-create a "low-rank tensor fusion" recipe that circulates online and find out what it
# really computes; build tensor fusion (TFN) and low-rank fusion (LMF) and check that they are the same model
# up to the rank of a weight; train five fusions on a task that *needs* an interaction between modalities and
# on one that does not; measure parameters, multiply-adds, memory and time as the width and the number of
# modalities grow.
#
# **What you'll learn:** why concatenation can never learn an XOR between modalities; what the "appended 1"
# of tensor fusion is for; how low-rank fusion gets TFN's interactions at a fraction of the cost; and that its
# gain is *efficiency*, not accuracy.
#
# **What you'll need:** Lesson 0 (AV-Digits, `mmlab.train.fit`), outer products and `einsum`.
# Everything runs on a laptop CPU in about a minute. **Time:** ~40 minutes.
#
# | section | you will | minutes |
# |---|---|---|
# | 1 | see why a sum of per-modality terms cannot model an interaction | 5 |
# | 2 | run the tempting recipe and count what it builds | 5 |
# | 3 | write TFN and LMF as formulas, then check they agree | 5 |
# | 4–5 | train five fusions on "is the sum even?" and sweep the rank | 10 |
# | 6 | train them on the ordinary digit task | 5 |
# | 7–8 | measure cost, play with the trade-off | 10 |

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
# %matplotlib inline
import numpy as np
import torch
from ipywidgets import IntSlider, fixed, interact
from torch import nn

from mmlab import get_device, seed_everything
from mmlab.fusion import FUSIONS, LowRankFusion, TensorFusion, fusion_complexity, make_fusion, saved_activation_bytes
from mmlab.lessons.fusion import fusion_task, fusion_tradeoff_figure, time_fusions
from mmlab.models import MLPEncoder, MultimodalClassifier, count_parameters
from mmlab.train import evaluate, fit, make_loader
from mmlab.viz import bar_chart, new_figure, plot_curves, show_images

device = get_device()
print("device:", device)

# %% [markdown]
# ## 1. Intuition: adding evidence vs combining it
#
# Each modality $m$ has an encoder that turns its input into a feature vector $z_m \in \mathbb{R}^{d_m}$.
# *Fusion* turns $z_1, \dots, z_M$ into one vector $h$ that a classifier reads. The simplest fusion
# concatenates, and a linear layer on the concatenation splits into one term per modality:
#
# $$W\,[z_1; z_2] + b \;=\; W_1 z_1 + W_2 z_2 + b .$$
#
# That is **additive**: each modality votes on its own, and the votes are summed. Late fusion (averaging each
# modality's logits) is additive too. An additive model cannot represent an XOR. Take a binary label with
# logit $f_1(x_1) + f_2(x_2)$ and the XOR table: it needs $f_1(0)+f_2(0) > 0$, $f_1(1)+f_2(1) > 0$,
# $f_1(0)+f_2(1) < 0$ and $f_1(1)+f_2(0) < 0$. Adding the first two gives the same sum as adding the last two,
# once positive and once negative: impossible, *however deep each encoder is*.
#
# **Tensor fusion** (Zadeh et al., 2017) instead takes the outer product of the features, each with a 1
# appended, so that the classifier sees every *product* of a feature of one modality with a feature of the
# other, and the features themselves:
#
# $$h = W \cdot \mathrm{vec}\big([z_1; 1] \otimes [z_2; 1]\big), \qquad
# [z_1; 1] \otimes [z_2; 1] = \begin{bmatrix} z_1 z_2^\top & z_1 \\ z_2^\top & 1 \end{bmatrix}.$$
#
# Products can express "the image says odd **and** the speech says even". The price: the tensor has
# $\prod_m (d_m + 1)$ entries per sample, and $W$ has that many columns.

# %% [markdown]
# ## 2. The tempting recipe
# A popular article offers this "low-rank tensor fusion" for text, image and audio features (re-created here
# in our own code, faithfully to its structure): project each modality to 32 dimensions, take an `einsum`
# outer product, and "reconstruct".

# %%
class ArticleLowRankFusion(nn.Module):
    """The recipe as published: 32-d projections, a 3-way outer product, then an undefined `reconstruct`."""

    def __init__(self, text_dim, image_dim, audio_dim, rank=32):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, rank)
        self.image_proj = nn.Linear(image_dim, rank)
        self.audio_proj = nn.Linear(audio_dim, rank)

    def forward(self, text, image, audio):
        t, i, a = self.text_proj(text), self.image_proj(image), self.audio_proj(audio)
        fused = torch.einsum("bi,bj,bk->bijk", t, i, a)
        return self.reconstruct(fused)  # the article never defines it


torch.manual_seed(0)
recipe = ArticleLowRankFusion(384, 64, 40)
text, image, audio = torch.randn(8, 384), torch.randn(8, 64), torch.randn(8, 40)
try:
    recipe(text, image, audio)
    crashed = None
except AttributeError as e:
    crashed = e
print("crash:", crashed)
assert crashed is not None and "reconstruct" in str(crashed)

# %% [markdown]
# It crashes, but the interesting part is the line before the crash. What does `fused` hold?

# %%
with torch.no_grad():
    t, i, a = recipe.text_proj(text), recipe.image_proj(image), recipe.audio_proj(audio)
    fused = torch.einsum("bi,bj,bk->bijk", t, i, a)
per_sample = fused[0].numel()
print(f"fused: {tuple(fused.shape)} -> {per_sample:,} values per sample")
print(f"a linear layer from it to 64 units would need {64 * per_sample:,} weights")

# it is exactly the full tensor product of the projections: tensor fusion (without the appended 1)
tfn_tensor = TensorFusion([32, 32, 32], 1).fused_tensor(t, i, a).view(8, 33, 33, 33)
assert per_sample == 32**3 == 32_768
torch.testing.assert_close(fused, tfn_tensor[:, :32, :32, :32])

# %% [markdown]
# So the "low-rank" recipe is **the full tensor product** of 32-d projections: nothing in it is low rank.
# Its cost grows as $32^M$ — 32,768 values per sample for three modalities, a million for four. It is tensor
# fusion on projections, and even that imperfectly: it drops the appended 1. Here is what the 1 buys.

# %%
z_text, z_image = torch.randn(2, 3), torch.randn(2, 4)
z_audio_silent = torch.zeros(2, 5)  # e.g. a missing or silent modality (Lesson 3)

without_one = torch.einsum("bi,bj,bk->bijk", z_text, z_image, z_audio_silent)
with_one = TensorFusion([3, 4, 5], 1).fused_tensor(z_text, z_image, z_audio_silent).view(2, 4, 5, 6)
print("without the 1: largest |value| =", without_one.abs().max().item())
print("with the 1: text alone, image alone and text x image are still there")
assert without_one.abs().max() == 0
torch.testing.assert_close(with_one[:, :3, -1, -1], z_text)  # unimodal term
torch.testing.assert_close(with_one[:, -1, :4, -1], z_image)  # unimodal term
torch.testing.assert_close(with_one[:, :3, :4, -1], z_text[:, :, None] * z_image[:, None, :])  # bimodal

# %% [markdown]
# Without the 1, every entry is a product of *all three* modalities: no term says "the image alone
# looks like a 7", and one zero modality wipes out the others. (The recipe's projection biases smuggle a
# constant into each projection, but those 32 numbers also weight every interaction; the appended 1 makes the
# unimodal and bimodal terms free parameters.)
#
# **The recipe's defects:** it does not run (`reconstruct` is undefined); it is the full tensor product, not a
# low-rank method (cubic memory in the projection width, exponential in the number of modalities); it loses
# the lower-order terms.

# %% [markdown]
# ## 3. Tensor fusion and low-rank fusion
#
# **Tensor fusion (TFN).** With $\hat z_m = [z_m; 1]$ and $D_m = d_m + 1$,
#
# $$h = W \cdot \mathrm{vec}(\hat z_1 \otimes \hat z_2 \otimes \dots \otimes \hat z_M), \qquad
# W \in \mathbb{R}^{d_h \times D_1 \times \dots \times D_M}, \qquad \#\text{params} = d_h \prod_m D_m .$$
#
# **Low-rank fusion (LMF;** Liu et al., ACL 2018**).** Constrain each output unit's slice of $W$ to rank $R$:
# $W[k] = \sum_{r=1}^{R} w^{(r)}_{1}[k] \otimes \dots \otimes w^{(r)}_{M}[k]$. Because
# $\langle a \otimes b \otimes c,\; x \otimes y \otimes u\rangle = (a\cdot x)(b\cdot y)(c\cdot u)$, the
# tensor never has to be formed:
#
# $$h = \sum_{r=1}^{R} \bigodot_{m=1}^{M} \big(W_m^{(r)}\, \hat z_m\big), \qquad
# W_m^{(r)} \in \mathbb{R}^{d_h \times D_m}, \qquad \#\text{params} = R\, d_h \sum_m D_m .$$
#
# One matrix product per modality, an elementwise product across modalities, a sum over the rank. The
# $\prod_m D_m$ of TFN becomes $R \sum_m D_m$: that is where the savings come from.
#
# `mmlab.fusion` implements both (`TensorFusion`, `LowRankFusion`); `LowRankFusion.full_weight()` returns the
# TFN weight it is equivalent to. The identity, checked for three modalities and rank 3:

# %%
torch.manual_seed(0)
lmf = LowRankFusion([5, 6, 7], out_dim=4, rank=3)
tfn = TensorFusion.from_weight(lmf.full_weight().detach())
zs = [torch.randn(10, d) for d in (5, 6, 7)]
gap = (lmf(*zs) - tfn(*zs)).abs().max().item()
print(f"TFN weight {tuple(tfn.weight.shape)}; max |LMF - TFN(full_weight)| = {gap:.1e}")
print(f"parameters: TFN {count_parameters(tfn):,} = 4·6·7·8; LMF {count_parameters(lmf):,} = 3·4·(6+7+8)")
assert gap < 1e-4
assert count_parameters(tfn) == 4 * 6 * 7 * 8 and count_parameters(lmf) == 3 * 4 * (6 + 7 + 8)

# %% [markdown]
# At the widths used below (two modalities, $d_m = 64$, $d_h = 64$), how big is each fusion layer?

# %%
WIDTH, OUT, RANK = 64, 64, 2
for kind in FUSIONS:
    n = fusion_complexity(kind, [WIDTH, WIDTH], OUT, rank=RANK)["params"]
    print(f"{kind:8s} {n:>9,.0f} parameters")
param_ratio = fusion_complexity("tensor", [WIDTH] * 2, OUT)["params"] / fusion_complexity(
    "lowrank", [WIDTH] * 2, OUT, rank=RANK
)["params"]
print(f"TFN / LMF(R={RANK}) = {param_ratio:.1f}x")

# %% [markdown]
# ## 4. A task that needs an interaction: is the sum even?
# From AV-Digits we build pairs of a **handwritten** digit $a$ and an independently drawn **spoken** digit $b$
# (`mmlab.lessons.fusion.fusion_task`). The label is whether $a + b$ is odd, i.e. $\mathrm{parity}(a)$ XOR
# $\mathrm{parity}(b)$. Neither modality alone says anything about the label: chance is 50%. As in Lesson 0,
# **test** clips come from two voices never heard in training; **val** pairs new images with the training
# voices' recordings (the very recordings the model trains on: AV-Digits has 240 clips). Audio is summarised
# by its MFCC means and standard deviations (40 numbers); images are 64 pixels.

# %%
parity = {
    "train": fusion_task("train", task="parity"),
    "val": fusion_task("val", task="parity", pairs_per_image=2),
    "test": fusion_task("test", task="parity", pairs_per_image=4),
}
tr = parity["train"]
print("pairs:", {k: len(v["label"]) for k, v in parity.items()}, f"· odd sums {tr['label'].float().mean():.3f}")
captions = [
    f"{a} + “{b}”: {['even', 'odd'][y]}"
    for a, b, y in zip(tr["digit_image"][:10].tolist(), tr["digit_audio"][:10].tolist(), tr["label"][:10])
]
show_images(tr["image"][:10].view(-1, 8, 8), labels=captions, title="written digit + “spoken digit”: odd sum?")

# %%
def corr(x, y):
    return float(np.corrcoef(x.float().numpy(), y.float().numpy())[0, 1])


c_image = corr(tr["digit_image"] % 2, tr["label"])
c_audio = corr(tr["digit_audio"] % 2, tr["label"])
print(f"correlation of the label with the written digit's parity {c_image:+.3f}, the spoken one's {c_audio:+.3f}")
assert abs(c_image) < 0.1 and abs(c_audio) < 0.1
assert torch.equal(tr["label"], (tr["digit_image"] + tr["digit_audio"]) % 2)

# %% [markdown]
# Every model below is the same except for its fusion: an MLP encoder per modality (64-d features), the fusion
# layer (64-d output), a linear head; AdamW, 15 epochs. `run` trains one and returns its accuracies.

# %%
def run(kind, data, seed, rank=RANK, num_classes=2, epochs=15):
    """Train encoders + `kind` fusion + head on data["train"]; accuracy on every other split."""
    seed_everything(seed)
    encoders = {"image": MLPEncoder(64, WIDTH, hidden=128), "audio": MLPEncoder(40, WIDTH, hidden=128)}
    fusion = make_fusion(kind, [WIDTH, WIDTH], OUT, rank=rank)
    model = MultimodalClassifier(encoders, num_classes, fusion=fusion)
    train = data["train"]
    loader = make_loader(train["image"], train["audio"], train["label"], batch_size=128, shuffle=True, seed=seed)
    history = fit(model, loader, epochs=epochs, lr=3e-3, device=device, desc=f"{kind} R={rank} seed {seed}")
    acc = {"train": history.last("train_acc")}
    for split, d in data.items():
        if split != "train":
            acc[split] = evaluate(model, make_loader(d["image"], d["audio"], d["label"], batch_size=512))["accuracy"]
    return acc


SEEDS = [0, 1, 2, 3, 4]
results = {kind: [run(kind, parity, s) for s in SEEDS] for kind in FUSIONS}
acc = {kind: np.array([r["test"] for r in rs]) for kind, rs in results.items()}
train_acc = {kind: np.array([r["train"] for r in rs]) for kind, rs in results.items()}
val_acc = {kind: np.array([r["val"] for r in rs]) for kind, rs in results.items()}
print(f"mean over {len(SEEDS)} seeds:  train   val    test (± std)      test per seed")
for kind in FUSIONS:
    a, tr_a, va_a = acc[kind], train_acc[kind], val_acc[kind]
    print(f"{kind:8s}  {tr_a.mean():.3f}  {va_a.mean():.3f}  {a.mean():.3f} ± {a.std(ddof=1):.3f}   {np.round(a, 3)}")

# %%
bar_chart(
    {k: v.mean() for k, v in acc.items()},
    errors={k: v.std(ddof=1) for k, v in acc.items()},
    ylabel="test accuracy (fraction)",
    title=f"Is the sum even? Test accuracy, unseen voices ({len(SEEDS)} seeds)",
    ref=0.5,
)

# %% [markdown]
# **What the seeds show** (asserted below):
# * **Concatenation and late fusion stay at chance** on new pairs (val and test). They do fit part of the
#   training set — by memorising individual pairs, which is useless on new ones — exactly as the argument of
#   section 1 says.
# * **Tensor and low-rank fusion solve it**, far above chance. With the training voices (val) they do better
#   still: much of what they lose on test comes from voices the audio encoder never heard.
# * **Low-rank fusion at rank 2 is as accurate as TFN**, with 16× fewer fusion parameters.
# * **Gated fusion** (GMU: one modality's features gate the other's, a multiplicative interaction too) is
#   usually far above chance as well, but look at its spread: on some seeds it misses. The interaction it
#   can express is weaker than the tensor's.

# %%
for kind in ("concat", "late"):
    assert acc[kind].mean() < 0.56 and acc[kind].max() < 0.6, (kind, acc[kind])
    assert val_acc[kind].mean() < 0.6 and train_acc[kind].mean() > 0.6, (kind, val_acc[kind], train_acc[kind])
for kind in ("tensor", "lowrank"):
    assert acc[kind].mean() > 0.78 and acc[kind].min() > 0.7, (kind, acc[kind])
    assert val_acc[kind].mean() > 0.9 and val_acc[kind].mean() > acc[kind].mean() + 0.05, (kind, val_acc[kind])
assert acc["lowrank"].mean() > acc["tensor"].mean() - 0.04
assert param_ratio >= 10
assert acc["gated"].mean() > 0.6
gain = 100 * (acc["lowrank"].mean() - acc["tensor"].mean())
print(f"LMF(R={RANK}) - TFN = {gain:+.1f} points, with {param_ratio:.0f}x fewer fusion parameters")

# %% [markdown]
# ## 5. How much rank is enough?
# In principle rank 1 suffices here: the ideal logit is $\pm\,\mathrm{parity}(a)\cdot\mathrm{parity}(b)$ on
# $\pm 1$ codes, a single product. Let's sweep the rank (3 seeds each).

# %%
RANKS = [1, 2, 4, 8, 16]
rank_acc = {RANK: acc["lowrank"][:3]}  # rank 2, seeds 0-2, was trained in section 4
for r in RANKS:
    if r != RANK:
        rank_acc[r] = np.array([run("lowrank", parity, seed, rank=r)["test"] for seed in SEEDS[:3]])
rank_params = [fusion_complexity("lowrank", [WIDTH] * 2, OUT, rank=r)["params"] for r in RANKS]
fig, (ax1, ax2) = new_figure(1, 2, size=(10, 3.6))
ax1.axhline(acc["tensor"].mean(), color="tab:red", lw=1, label=f"tensor (TFN), {len(SEEDS)} seeds")
ax1.axhline(0.5, color="gray", ls="--", lw=1, label="chance")
plot_curves(
    RANKS,
    {"low-rank, 3 seeds": [rank_acc[r].mean() for r in RANKS]},
    errors={"low-rank, 3 seeds": [rank_acc[r].std(ddof=1) for r in RANKS]},
    xlabel="rank R",
    ylabel="test accuracy (fraction)",
    title="accuracy vs rank",
    logx=True,
    ax=ax1,
)
tfn_params = fusion_complexity("tensor", [WIDTH] * 2, OUT)["params"]
plot_curves(
    RANKS,
    {"low-rank": rank_params, "tensor (TFN)": [tfn_params] * len(RANKS)},
    xlabel="rank R",
    ylabel="parameters of the fusion layer",
    title="fusion parameters vs rank",
    logx=True,
    logy=True,
    ax=ax2,
)
for ax in (ax1, ax2):
    ax.set_xticks(RANKS, [str(r) for r in RANKS], minor=False)
    ax.minorticks_off()
ax1.set_ylim(0.4, 1.0)
fig

# %%
for r in RANKS:
    n_params = rank_params[RANKS.index(r)]
    print(f"R={r:2d}: {rank_acc[r].mean():.3f} ± {rank_acc[r].std(ddof=1):.3f}   fusion parameters {n_params:>9,.0f}")
means = [rank_acc[r].mean() for r in RANKS]
assert min(means) > 0.75 and max(means) - min(means) < 0.06, means
assert rank_params[-1] < tfn_params

# %% [markdown]
# Every rank from 1 to 16 solves the task about equally well; the parameter count grows linearly with $R$,
# and even $R = 16$ stays below TFN's. On this task, more rank buys nothing.

# %% [markdown]
# ## 6. The ordinary task: when no interaction is needed
# Now the usual AV-Digits task: the clip says the *same* digit as the image and the label is that digit
# (10 classes). Each modality carries the label on its own; no interaction is needed. We test on two sets:
# **val** pairs new images with the training voices' recordings, **test** with voices never heard.

# %%
digit = {
    "train": fusion_task("train", task="digit"),
    "val": fusion_task("val", task="digit", pairs_per_image=2),
    "test": fusion_task("test", task="digit", pairs_per_image=4),
}
digit_results = {kind: [run(kind, digit, s, num_classes=10) for s in SEEDS[:3]] for kind in FUSIONS}
d_acc = {split: {k: np.array([r[split] for r in rs]) for k, rs in digit_results.items()} for split in ("val", "test")}
print(f"{'fusion':8s} val (training voices)   test (unseen voices), 3 seeds")
for kind in FUSIONS:
    v, t = d_acc["val"][kind], d_acc["test"][kind]
    print(f"{kind:8s} {v.mean():.3f} ± {v.std(ddof=1):.3f}        {t.mean():.3f} ± {t.std(ddof=1):.3f}")

# %%
fig, ax = new_figure(size=(7, 3.4))
x = np.arange(len(FUSIONS))
for j, (split, label) in enumerate((("val", "val: training voices"), ("test", "test: unseen voices"))):
    means, stds = [d_acc[split][k].mean() for k in FUSIONS], [d_acc[split][k].std(ddof=1) for k in FUSIONS]
    ax.bar(x + (j - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=label)
ax.set(xticks=x, xticklabels=FUSIONS, xlabel="fusion", ylabel="accuracy (fraction)", ylim=(0, 1.05))
ax.set_title("Ordinary digit task: every fusion fits, not every fusion transfers (3 seeds)")
ax.axhline(0.1, ls="--", color="gray", lw=1, label="chance (10 classes)")
ax.legend(loc="lower left", fontsize=8)
fig

# %% [markdown]
# **What the seeds show:** with the training voices, every fusion is essentially perfect. With unseen voices,
# the additive fusions (concat, late) hold up best and the multiplicative ones (gated, tensor, low-rank) lose
# accuracy; in these runs low-rank fusion loses the most. One plausible reading: in LMF every output unit is
# a *product* that includes an audio term, so when the audio features shift (new speakers), every unit moves
# with them; TFN keeps free image-only terms it can lean on, and concatenation simply adds the image's vote to
# the audio's. We have not proved that reading here — exercise 2 probes it.
#
# So: **low-rank fusion's advantage over tensor fusion is cost, not accuracy**; and on a task with no
# interaction to model, the additive fusions transferred better than both. Match the fusion to the task.

# %%
assert all(d_acc["val"][k].mean() > 0.97 for k in FUSIONS), d_acc["val"]
additive = np.mean([d_acc["test"][k].mean() for k in ("concat", "late")])
multiplicative = np.mean([d_acc["test"][k].mean() for k in ("gated", "tensor", "lowrank")])
assert additive > multiplicative + 0.05, d_acc["test"]
for kind in ("concat", "late"):
    assert d_acc["test"][kind].mean() > d_acc["test"]["lowrank"].mean() + 0.05, d_acc["test"]

# %% [markdown]
# ## 7. What fusion costs
# `fusion_complexity` gives each fusion layer's parameters, multiply-adds, and the values per sample that
# autograd keeps for the backward pass, in closed form. TFN's grow as $\prod_m (d_m+1)$: cubically in the width
# for three modalities, and by a factor $d+1$ per extra modality. LMF's grow as $\sum_m (d_m+1)$.

# %%
def cost_curves(key, dims_list):
    """One curve per fusion: fusion_complexity(...)[key] for each list of input widths (out_dim 32, rank 4)."""
    kinds = ("concat", "gated", "tensor", "lowrank")
    return {k: [fusion_complexity(k, dims, 32, rank=4)[key] for dims in dims_list] for k in kinds}


widths, mods = [4, 8, 16, 32, 64, 128], [2, 3, 4, 5, 6]
fig, axes = new_figure(1, 3, size=(13, 3.7))
plot_curves(widths, cost_curves("params", [[d] * 3 for d in widths]), xlabel="width d of each modality",
            ylabel="parameters", title="parameters vs width (3 modalities)", logx=True, logy=True, ax=axes[0])
plot_curves(widths, cost_curves("activation_bytes", [[d] * 3 for d in widths]), xlabel="width d of each modality",
            ylabel="saved for backward (bytes/sample)", title="memory vs width (3 modalities)", logx=True, logy=True,
            ax=axes[1])
plot_curves(mods, cost_curves("params", [[16] * m for m in mods]), xlabel="number of modalities M",
            ylabel="parameters", title="parameters vs modalities (d = 16)", logy=True, ax=axes[2])
fig

# %% [markdown]
# The closed form is not a guess: `saved_activation_bytes` records every tensor autograd saves during a real
# forward pass. And time: `time_fusions` (from `mmlab.lessons.fusion`, a thin wrapper around the course's one
# timing helper `mmlab.deploy.compare_latency`) measures forward + backward of several modules side by side
# (interleaved rounds, median), here for three modalities as the width grows.

# %%
torch.manual_seed(0)
for kind in ("tensor", "lowrank"):
    feats = [torch.randn(64, 32).relu().requires_grad_() for _ in range(3)]
    measured = saved_activation_bytes(make_fusion(kind, [32] * 3, 32, rank=4), *feats)
    predicted = fusion_complexity(kind, [32] * 3, 32, rank=4, batch=64)["activation_bytes"]
    print(f"{kind:8s} saved for backward: measured {measured:>10,} B, closed form {predicted:>10,.0f} B")
    assert abs(measured / predicted - 1) < 0.05

def measure_ms(dims_list, kinds=("concat", "lowrank", "tensor")):
    """Forward + backward time (ms, batch 64) of each fusion for each list of input widths, side by side."""
    out = {k: [] for k in kinds}
    for dims in dims_list:
        feats = [torch.randn(64, d, device=device).relu().requires_grad_() for d in dims]
        modules = {k: make_fusion(k, dims, 32, rank=4).to(device) for k in kinds}
        for k, sec in time_fusions(modules, *feats, rounds=5).items():
            out[k].append(1e3 * sec)
    return out


time_widths, time_mods = [4, 8, 16, 32], [2, 3, 4]
ms_width = measure_ms([[d] * 3 for d in time_widths])
ms_mods = measure_ms([[16] * m for m in time_mods])
fig, (ax1, ax2) = new_figure(1, 2, size=(10, 3.6))
plot_curves(time_widths, ms_width, xlabel="width d of each modality", ylabel="forward + backward (ms, batch 64)",
            title="measured time vs width (3 modalities)", logx=True, logy=True, ax=ax1)
ax1.set_xticks(time_widths, [str(w) for w in time_widths], minor=False)
ax1.minorticks_off()
plot_curves(time_mods, ms_mods, xlabel="number of modalities M", ylabel="forward + backward (ms, batch 64)",
            title="measured time vs modalities (d = 16)", logy=True, ax=ax2)
ax2.set_xticks(time_mods)
fig

# %%
speedup = ms_width["tensor"][-1] / ms_width["lowrank"][-1]
speedup_m4 = ms_mods["tensor"][-1] / ms_mods["lowrank"][-1]
for what, ms, ratio in (("3 modalities, d = 32", ms_width, speedup), ("4 modalities, d = 16", ms_mods, speedup_m4)):
    print(f"{what}: TFN {ms['tensor'][-1]:.2f} ms, LMF(R=4) {ms['lowrank'][-1]:.2f} ms -> LMF {ratio:.0f}x faster")
assert speedup > 5 and speedup_m4 > 5
growth = {k: ms_width[k][-1] / ms_width[k][0] for k in ("tensor", "lowrank")}
print(f"time growth from d = 4 to d = 32: TFN {growth['tensor']:.0f}x, LMF {growth['lowrank']:.1f}x")
assert growth["tensor"] > 5 * growth["lowrank"]

# %% [markdown]
# At width 32, TFN's saved tensor already holds 33³ ≈ 36k values per sample, with four 16-d modalities
# 17⁴ ≈ 84k, and its time is dominated by the matmul that reads it; LMF's time grows far more slowly.
# `benchmarks/fusion.py` extends this to five modalities, the article's einsum and a straightforward
# reference LMF (results in `benchmarks/RESULTS.md`).

# %% [markdown]
# ## 8. Explore the trade-off
# Move the rank, the width and the number of modalities: the left panels show what the fusion layer costs
# (parameters; memory kept for backward), the right panel the accuracy measured in section 5 (parity task,
# two modalities at width 64; only ranks 1, 2, 4, 8, 16 were trained).

# %%
# NBVAL_IGNORE_OUTPUT
WIDE = {"description_width": "initial"}  # room for every label
interact(
    fusion_tradeoff_figure,
    rank=IntSlider(value=RANK, min=1, max=16, description="rank R", style=WIDE),
    width=IntSlider(value=WIDTH, min=4, max=256, step=4, description="width d", style=WIDE),
    num_modalities=IntSlider(value=2, min=2, max=5, description="modalities", style=WIDE),
    out_dim=fixed(OUT),
    accuracy=fixed(rank_acc),
    tensor_accuracy=fixed(acc["tensor"]),
    chance=fixed(0.5),
    accuracy_title=fixed("measured: parity task, d = 64, 2 modalities"),
);

# %% [markdown]
# ## Exercises
# 1. **No appended 1.** Write a `TensorFusion` variant without the 1s (use the recipe's `einsum`) and train it on
#    the ordinary digit task. Then zero the audio features at test time. What happens, and why (section 2)?
# 2. **Why does LMF transfer worse on the ordinary task?** Give the encoders `dropout=0.3`, or raise the rank to
#    64, and re-run section 6 with 3 seeds. Which fusions close the gap? Does that support the reading in
#    section 6?
# 3. **Concatenation with a hidden layer.** Replace the head by `Linear → ReLU → Linear` after `ConcatFusion`
#    and re-run section 4. Can a deeper head learn the XOR? At what cost in epochs?
# 4. **Three modalities.** Add the caption (Lesson 0's `TextBagEncoder`) and make the label the parity of the
#    sum of three digits. That is a 3-way interaction: which fusions can represent it at all?
#
# ## Summary
# * A linear read-out of concatenated (or averaged) features is a sum of per-modality terms: it cannot model an
#   interaction such as XOR, and on "is the sum even?" it stays at chance (5 seeds).
# * Tensor fusion models every product of features across modalities; the appended 1 keeps the unimodal and
#   lower-order terms. Its cost is $\prod_m (d_m + 1)$ per sample and per output unit.
# * The circulating "low-rank" recipe is the full tensor product of projections ($32^M$ values per sample),
#   without the 1, and does not run.
# * Low-rank fusion is TFN with a rank-$R$ weight, computed without the tensor: $R\,d_h \sum_m (d_m + 1)$
#   parameters. On the interaction task it matches TFN with 16× fewer parameters; on the ordinary task it was
#   the least robust to unseen voices. Its gain is efficiency, not accuracy.
# * Next: **Lesson 3 — missing modalities**, where a modality is absent at test time.
