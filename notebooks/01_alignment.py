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
# # Lesson 1 — Modality alignment: streams out of step, and words that point at places
#
# **What you'll do:** take a digit string that exists twice — as a "video" (each digit's image held for a while)
# and as speech (the words said with pauses and changes of pace) — and find which moment of one goes with
# which moment of the other. You will re-create a tempting alignment recipe and watch it crash or silently
# mix up a batch; measure how pairing frames by index collapses as the streams drift apart; learn a shared
# space for speech frames, video frames and words with a contrastive loss; align with dynamic time warping
# (DTW) and with cross-modal attention; and make a word point at the place where its digit is drawn.
#
# **What you'll learn:** what "aligned" means as a number; why two modalities need a shared space before
# they can be compared; DTW, soft-DTW and why soft-DTW needs its divergence form; how cross-modal attention
# (queries from one modality, keys and values from the other) is wired, masked and trained; and what a
# claim like "alignment accuracy went from 68% to 92%" must come with.
#
# **What you'll need:** Lesson 0 (AV-Digits, `mmlab.train.fit`), PyTorch modules and a training loop, and
# softmax attention at the level of "weights that sum to one". Runs on a laptop CPU.
# **Time:** ~60 minutes.
#
# | section | you will | minutes |
# |---|---|---|
# | 1–2 | meet the two streams and the ground truth | 5 |
# | 3 | run the tempting recipe and see it fail in four ways | 8 |
# | 4 | measure naive pairing against time warp | 3 |
# | 5 | learn a shared space with InfoNCE | 5 |
# | 6–7 | align with DTW and soft-DTW | 8 |
# | 8–10 | train attention as an aligner, choose on val, report on test over seeds, play with the widget | 8 |
# | 11 | ground a word in an image | 5 |
# | 12 | read a "68% → 92%" claim critically | 3 |
# | exercises | write the soft minimum and soft-DTW, check your understanding | 15 |

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
# ## 1. Setup
# Everything below runs on the CPU; on a GPU, `mmlab.get_device()` picks it and nothing else changes.
#
# **The protocol** ([How this course measures](00_setup.ipynb#How-this-course-measures)): models train on
# episodes of the *training* voices; every choice — the epochs of each model, which cost DTW uses, which method
# is "best" — is made on *validation* episodes (seen voices, unseen recordings and images); the *test* episodes
# (two unseen voices, unseen images) are scored once, in section 9, after the last choice. Until then every
# number printed comes from val.

# %%
# %matplotlib inline
import math

import numpy as np
import torch
import torch.nn.functional as F
from ipywidgets import Dropdown, FloatSlider, IntSlider, fixed
from mmlab.widgets import interact
from torch import nn

from mmlab import get_device, seed_everything
from mmlab.align import (
    ALIGN_METHODS,
    AlignmentSpace,
    AttentionAligner,
    CrossModalAttention,
    GroundingAttention,
    dtw,
    info_nce,
    pairwise_cost,
    segment_attention_loss,
    soft_alignment,
    soft_dtw,
    soft_dtw_divergence,
)
from mmlab.data import collate_episodes, make_alignment_episode, make_alignment_episodes, make_grounding_canvases
from mmlab.lessons.alignment import (
    ALIGN_METHOD_LABELS,
    alignment_curves_figure,
    alignment_experiment,
    alignment_figure,
    alignment_score,
    alignment_test_sets,
    chance_accuracy,
    episode_figure,
    grounding_figure,
    selection_batch,
    timing_ranges,
)
from mmlab.lessons.tour import KeepBest
from mmlab.stats import format_spread, paired_bootstrap, sign_count
from mmlab.train import fit, make_loader, predict, to_device
from mmlab.viz import new_figure, plot_history, show_images

device = get_device()
print("device:", device)

# %% [markdown]
# ## 2. One string, two streams
# An **episode** is a string of 3–6 digits (never the same digit twice in a row) that exists in two modalities:
#
# * **video** — frames of 40 ms; each digit's 8×8 image is held for a while, then the next digit appears;
# * **speech** — the digit words from AV-Digits said one after the other, as log-mel frames of 40 ms (32 bands);
#   *training episodes use the training voices' training recordings, validation episodes the same voices'
#   held-out recordings, test episodes the two voices held out of training*.
#
# The **transcript** (the digit words) is the third modality: every frame of either stream belongs to one
# token of it, so the true alignment is known by construction. A pause belongs to the word before it, the
# leading silence to the first word; we *score* only the frames where a word is being spoken.
#
# One knob, **warp** $w \in [0, 1]$, moves the two streams apart. At warp 0 each token lasts exactly as long in
# both streams, so frame *t* of the video goes with frame *t* of the speech. As the warp grows
# (`make_alignment_episode`), word $k$ of $K$ is played $1.5^{\,w(u_k + g\,r_k)}$ times as long as its
# recording, where $u_k, g \sim U(-1, 1)$ and $r_k$ runs from −1 (first word) to 1 (last), so the pace also
# *drifts* along the string; digit $k$ is held $4^{\,w(u'_k + g'\,r_k)}$ times its word's natural duration
# (fresh draws $u'_k, g'$); each word is followed by a pause of $U(0, 0.4w)$ s, and the speech starts after a
# leading silence of $U(0, 0.5w)$ s. At warp 1 that is: a word lasts between $1/2.25$ and $2.25$ times its
# natural duration ($1.5^{\pm 2}$), a digit is held between $1/16$ and $16$ times it ($4^{\pm 2}$), pauses
# up to 0.4 s, a leading silence up to 0.5 s (each up to one 40 ms frame more, from rounding to whole frames).
# The same episode number gives the same digits, images and clips at every warp; only the timing changes.

# %%
ep0 = make_alignment_episode("val", warp=0.0, index=3)
ep1 = make_alignment_episode("val", warp=1.0, index=3)
print(f"transcript: “{ep0.transcript}”")
for name, ep in (("warp 0", ep0), ("warp 1", ep1)):
    print(
        f"{name}: video {tuple(ep.video.shape)}, speech {tuple(ep.speech.shape)}, frames per token: "
        f"video {ep.video_token.bincount().tolist()}, speech {ep.speech_token.bincount().tolist()}"
    )
episode_figure([ep0, ep1], titles=["warp 0: the streams in step", "warp 1: the same episode, out of step"])

# %% [markdown]
# At warp 0 the boundaries of the two panels line up; at warp 1 they do not. The checks below make it exact on
# 60 episodes: at warp 0 frame *t* of both streams always has the same token; at warp 1 the stretches, holds,
# pauses and silences measured from the frames (`timing_ranges`) stay inside the ranges stated above, and
# reach beyond the narrower ranges one might guess (1.5× for a word, 4× for a digit).

# %%
in_step = make_alignment_episodes(60, "val", warp=0.0, seed=7)
assert all(len(e.video) == len(e.speech) and torch.equal(e.video_token, e.speech_token) for e in in_step)
assert all(3 <= len(e.digits) <= 6 and e.frame_ms == 40 and e.speech.shape[1] == 32 for e in in_step)
out_of_step = make_alignment_episodes(60, "val", warp=1.0, seed=7)
same_len = sum(len(e.video) == len(e.speech) for e in out_of_step)
print(f"warp 1: {same_len} of {len(out_of_step)} episodes have streams of equal length")
assert same_len < 15
timing = timing_ranges(out_of_step)
frame = 0.04  # rounding to whole 40 ms frames moves each measure by up to one frame
for name, v in timing.items():
    print(f"warp 1, {name:15s} measured {v.min():6.2f} … {v.max():6.2f}  over {len(v)} tokens or episodes")
stretch, hold = timing["speech_stretch"], timing["video_hold"]
assert stretch.min() > 0.9 / 2.25 and stretch.max() < 1.1 * 2.25 and (stretch.max() > 1.5 or stretch.min() < 1 / 1.5)
assert hold.min() > 0.9 / 16 and hold.max() < 1.1 * 16 and (hold.max() > 4 or hold.min() < 1 / 4)
assert timing["pause_s"].max() <= 0.4 + frame + 1e-9 and timing["lead_s"].max() <= 0.5 + frame + 1e-9

# %% [markdown]
# ## 3. The tempting recipe, and four ways it fails
# A popular article aligns text and image sequences like this (re-created here): two
# `nn.MultiheadAttention(embed_dim=512)` blocks, one per direction, applied to 768-d features, then a scorer
# `Linear(768 + 768, 1)` on `cat([text, image], -1)` called the "alignment score". Let us run it on a batch of 4
# captions of 12 tokens and 4 images of 49 patches, 768-d each, in the usual `(batch, length, dim)` layout.
#
# **Failure 1 — it crashes.** The attention expects 512-d inputs and receives 768-d ones.

# %%
torch.manual_seed(0)
B = 4
text, image = torch.randn(B, 12, 768), torch.randn(B, 49, 768)
try:
    nn.MultiheadAttention(embed_dim=512, num_heads=8)(text, image, image)
    crashed = None
except Exception as e:  # whatever it raises
    crashed = f"{type(e).__name__}: {e}"
print(crashed)
assert crashed is not None

# %% [markdown]
# **Failure 2 — the quick fix runs, and silently mixes the batch.** Set `embed_dim=768` and it still fails here
# (with a puzzling reshape error), because `nn.MultiheadAttention` defaults to `batch_first=False`: it reads
# `(B, L, D)` as `(L, B, D)`. When text and image happen to have the *same* length, it runs without a word and
# attends *across the batch*: sample 0's output then depends on sample 1's image.

# %%
torch.manual_seed(0)
attn = nn.MultiheadAttention(embed_dim=768, num_heads=8)  # batch_first=False, the default
try:
    attn(text, image, image)  # 12 text tokens, 49 patches
    quick_fix_error = None
except RuntimeError as e:
    quick_fix_error = str(e)
print("12 tokens vs 49 patches:", quick_fix_error)
assert quick_fix_error is not None

text16, image16 = torch.randn(B, 16, 768), torch.randn(B, 16, 768)
out = attn(text16, image16, image16)[0]
image16_changed = image16.clone()
image16_changed[1] += 1.0  # touch only sample 1's image
leak = (attn(text16, image16_changed, image16_changed)[0][0] - out[0]).abs().max().item()

attn_bf = nn.MultiheadAttention(embed_dim=768, num_heads=8, batch_first=True)
out_bf = attn_bf(text16, image16, image16)[0]
leak_bf = (attn_bf(text16, image16_changed, image16_changed)[0][0] - out_bf[0]).abs().max().item()
print(f"change in sample 0's output when only sample 1 changes: batch_first=False {leak:.3f}, True {leak_bf:.1e}")
assert leak > 1e-2 and leak_bf < 1e-6

# %% [markdown]
# **Failure 3 — the "alignment score" cannot be computed, and would mean nothing.** `cat([text, image], -1)` needs
# both sequences to have the same length; a caption and an image almost never do. Even when they do, a
# `Linear` on the concatenated token pairs *assumes* that token *i* of the text goes with patch *i* of the
# image — the very alignment it is supposed to find — and the recipe gives it no loss and no labels to learn from.

# %%
try:
    torch.cat([text, image], dim=-1)
    concat_error = None
except RuntimeError as e:
    concat_error = str(e)
print(concat_error)
assert concat_error is not None

# %% [markdown]
# **Failure 4 — no padding masks.** In a batch, short sequences are padded to the longest. Without a
# `key_padding_mask` the queries attend to the padding too, so the output changes with the amount of padding
# — that is, with whatever else happens to be in the batch.

# %%
pad = torch.zeros(B, 15, 768)
image_padded = torch.cat([image, pad], 1)  # 49 real patches + 15 padding positions
is_pad = torch.zeros(B, 64, dtype=torch.bool)
is_pad[:, 49:] = True
ref = attn_bf(text, image, image)[0]
no_mask = attn_bf(text, image_padded, image_padded)[0]
masked = attn_bf(text, image_padded, image_padded, key_padding_mask=is_pad)[0]
err_no_mask, err_masked = (no_mask - ref).abs().max().item(), (masked - ref).abs().max().item()
print(f"max change caused by padding: without mask {err_no_mask:.3f}, with mask {err_masked:.1e}")
assert err_no_mask > 1e-2 and err_masked < 1e-5

# %% [markdown]
# ### The corrected block: `mmlab.align.CrossModalAttention`
# MulT (Tsai et al., ACL 2019) wires cross-modal attention like this: queries from one modality, keys and values
# from the other, each *projected* to a shared width, so inputs of different widths and lengths are fine:
#
# $$Q = X_q W_q,\quad K = X_c W_k,\quad V = X_c W_v,\qquad
# \mathrm{Attn} = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_h}} + M\Big)V,\quad M_{ij} = -\infty \text{ at padded } j.$$
#
# It is batch first, takes a mask that is True at *real* positions (the course's convention), and returns the
# attended features and the weights. **It is only the attention sub-layer of MulT's cross-modal block.** The
# full block adds positional embeddings to both inputs (after a temporal 1-D convolution), a LayerNorm before
# the attention, a residual connection around it, a position-wise feed-forward layer (with its own LayerNorm and
# residual), and MulT stacks several such blocks per pair of modalities. Without positions, this sub-layer
# cannot tell the order of the context: permute the patches and the output is the same. Here: 12 text tokens of 768-d attend over 49 image patches of 512-d
# (another encoder), padded to 64.

# %%
torch.manual_seed(0)
cma = CrossModalAttention(query_dim=768, context_dim=512, dim=256, heads=4)
image512 = torch.randn(B, 64, 512)
real = torch.arange(64)[None] < torch.tensor([49, 30, 64, 10])[:, None]  # 4 images with 49, 30, 64, 10 patches
attended, weights = cma(text, image512, context_mask=real)
print("attended", tuple(attended.shape), "weights", tuple(weights.shape), "(batch, heads, text tokens, patches)")

garbage = image512.clone()
garbage[~real] = 100 * torch.randn(int((~real).sum()), 512)  # whatever sits in the padding...
other = image512.clone()
other[1] += 1.0  # ...or in another sample
checks = {
    "weight on padding": weights.masked_select(~real[:, None, None, :]).abs().max().item(),
    "change from padding content": (cma(text, garbage, context_mask=real)[0] - attended).abs().max().item(),
    "change in sample 0 from sample 1": (cma(text, other, context_mask=real)[0][0] - attended[0]).abs().max().item(),
}
for k, v in checks.items():
    print(f"{k:35s} {v:.1e}")
assert all(v < 1e-5 for v in checks.values())
assert torch.allclose(weights.sum(-1), torch.ones(B, 4, 12))

# %% [markdown]
# Fixing the plumbing does not answer the real question: *which* frame goes with which? For that we need a
# task with a known answer, a metric, and baselines. That is what the episodes give us.
#
# ## 4. Naive pairing, measured
# **Metric.** Pair every spoken speech frame with one video frame; the frame is right when that video frame
# shows the digit of the *same token* (the same position in the transcript, not just the same digit). The
# **alignment accuracy** is the share of spoken frames that are right. Picking a token at random is right
# 1/K of the time for a string of K digits (the chance level printed below).
#
# **Two naive pairings.** *By index*: speech frame *t* goes with video frame *t* (what `cat` on equal-length
# sequences assumes). *Proportional*: resample one stream to the length of the other, so speech frame *t* goes
# with video frame ⌊(t + ½)·T_video / T_speech⌋. Both are perfect at warp 0 by construction. We use 24
# validation episodes per warp and per seed (`alignment_test_sets(..., split="val")`: stream 1000 + seed of the
# val split), the same for every method below; the test episodes are built the same way from the test split
# and wait for section 9. `alignment_score(method, batch, ...)` pairs every speech frame by the method
# (`mmlab.align.predict_tokens`) and returns the share of spoken frames paired right
# (`mmlab.align.alignment_accuracy`).

# %%
warps = [0.0, 0.25, 0.5, 0.75, 1.0]
seeds = [0, 1, 2, 3, 4]
val_sets = alignment_test_sets(warps, seeds, n=24, split="val")
naive = {
    m: np.array([[alignment_score(m, val_sets[w, s]) for w in warps] for s in seeds]) for m in ("index", "proportional")
}
chance_level = np.mean([chance_accuracy(b) for b in val_sets.values()])  # the mean of 1/K over spoken frames
print("split: VAL — mean over seeds")
print("warp          " + "  ".join(f"{w:5.2f}" for w in warps))
for m, acc in naive.items():
    print(f"{m:13s} " + "  ".join(f"{a:5.2f}" for a in acc.mean(0)))
print(f"chance ≈ {chance_level:.2f}")
assert all((acc[:, 0] == 1.0).all() for acc in naive.values())  # perfect in step...
assert all(acc[:, -1].max() < (1 + chance_level) / 2 for acc in naive.values())  # ...closer to chance at warp 1

# %% [markdown]
# Both naive pairings lose most of their accuracy as the streams drift apart: at warp 1 they are closer to
# chance than to perfect in every seed. To do better we must *look* at the frames — and a frame of speech (32 mel bands) and
# a frame of video (64 pixels) cannot even be compared yet:

# %%
try:
    pairwise_cost(ep0.speech, ep0.video.flatten(1))  # (T, 32) against (T, 64)
    comparable = True
except ValueError as e:
    comparable = False
    print("ValueError:", e)
assert not comparable

# %% [markdown]
# ## 5. A shared space, learned with InfoNCE
# We learn three encoders into one 32-d space: one for speech frames (a 1-D convolution that sees ±5 frames,
# ±200 ms), one for video frames (each frame alone), and an embedding $e_w$ per digit word. The InfoNCE loss
# (van den Oord et al. 2018) pulls each frame $z$ toward the word of its token and pushes it from the others:
#
# $$\mathcal{L} = -\log \frac{\exp(\cos(z, e_{y})/\tau)}{\sum_{w} \exp(\cos(z, e_w)/\tau)},\qquad \tau = 0.1.$$
#
# With the ten words as the candidates, this is a cross-entropy on cosine logits: `info_nce` and
# `F.cross_entropy(space.word_logits(z), y)` are the same number (checked below). CLIP uses the other
# captions in the batch as candidates instead (lesson 7). Training uses the *frames' labels*, which our episodes
# know by construction; pauses are left out, since they say no word. The space also gives probabilities,
# $p(w \mid \text{frame}) = \mathrm{softmax}_w(\cos(z, e_w)/\tau)$, which we will use as a cost.
#
# **Choosing the epoch on val.** Each seed trains for up to 12 epochs on 150 training episodes; after every
# epoch `KeepBest` measures how often the space names the right word for the frames of 30 *validation*
# episodes (`selection_batch`: mixed warps) and keeps the best epoch's weights. The width, τ, context and
# learning rate were fixed before any measurement and are not tuned here (tuning them would be done the same
# way, on val).


# %%
def frame_word_accuracy(space, batch):
    """Share of the batch's spoken speech frames and video frames whose nearest word is their token's word."""
    batch = to_device(batch, next(space.parameters()).device)
    z_speech, z_video = (
        space.speech(batch["speech"], batch["speech_mask"]),
        space.video(batch["video"], batch["video_mask"]),
    )
    right = torch.cat(
        [
            (space.word_logits(z_speech).argmax(-1) == batch["speech_digit"])[batch["speech_voiced"]],
            (space.word_logits(z_video).argmax(-1) == batch["video_digit"])[batch["video_mask"]],
        ]
    )
    return right.float().mean().item()


def train_space(seed, n_episodes=150, epochs=12):
    """Train a shared speech/video/word space with InfoNCE on training episodes at random warps; the epoch is
    chosen on validation episodes."""
    seed_everything(seed)
    warp = np.random.default_rng(seed).uniform(0, 1, n_episodes)
    train = collate_episodes(make_alignment_episodes(n_episodes, "train", warp=warp, seed=seed))
    keys = ("speech", "speech_mask", "speech_voiced", "speech_digit", "video", "video_mask", "video_digit")
    loader = make_loader(*(train[k] for k in keys), batch_size=32, shuffle=True, seed=seed)
    space = AlignmentSpace(dim=32, speech_context=5, temperature=0.1)

    def forward(space, batch):
        speech, speech_mask, voiced, speech_digit, video, video_mask, video_digit = batch
        z = torch.cat([space.speech(speech, speech_mask)[voiced], space.video(video, video_mask)[video_mask]])
        target = torch.cat([speech_digit[voiced], video_digit[video_mask]])
        return space.word_logits(z), target  # InfoNCE over the ten words = cross-entropy on these logits

    val = selection_batch(seed)
    best = KeepBest(lambda space: frame_word_accuracy(space, val), name="val_frame_acc")
    history = fit(
        space,
        loader,
        epochs=epochs,
        lr=3e-3,
        forward_fn=forward,
        after_epoch=best,
        device=device,
        desc=f"InfoNCE seed {seed}",
    )
    return best.restore(space).eval(), history, train, best


space0, history0, train0, best0 = train_space(seeds[0])
print(
    f"seed {seeds[0]}: epoch chosen on val {best0.best_epoch} of {len(best0.scores)}, val frame accuracy "
    f"{100 * best0.best_score:.1f}%"
)
assert history0["train_loss"][-1] < math.log(10) / 3  # less than a third of the chance loss
plot_history(history0, title=f"InfoNCE training of the shared space (seed {seeds[0]}); chance loss = ln 10 ≈ 2.30 nats")

# %% [markdown]
# A space that knows nothing scores ln 10 ≈ 2.30 nats, the chance loss; training takes the loss below a third of
# that. How well does the space name the word of a frame it has never seen — new images, and new recordings of
# the training voices (val)?

# %%
with torch.no_grad():
    b = to_device(val_sets[0.0, seeds[0]], device)
    z_speech = space0.speech(b["speech"], b["speech_mask"])
    z_video = space0.video(b["video"], b["video_mask"])
    word_speech, word_video = space0.word_logits(z_speech).argmax(-1), space0.word_logits(z_video).argmax(-1)
    acc_speech = (word_speech == b["speech_digit"])[b["speech_voiced"]].float().mean().item()
    acc_video = (word_video == b["video_digit"])[b["video_mask"]].float().mean().item()
    same_loss = torch.isclose(
        info_nce(z_speech[b["speech_voiced"]], space0.words, b["speech_digit"][b["speech_voiced"]], 0.1),
        F.cross_entropy(space0.word_logits(z_speech[b["speech_voiced"]]), b["speech_digit"][b["speech_voiced"]]),
    )
print(
    f"word of a single frame, val episodes: video {100 * acc_video:.1f}%, speech (seen voices, unseen recordings) "
    f"{100 * acc_speech:.1f}%  (chance 10%)"
)
assert same_loss
assert acc_video > 0.95 and 0.5 < acc_speech < acc_video - 0.03

# %% [markdown]
# Video frames are almost always named right; a single 40 ms frame of speech less often — and the test voices,
# never heard, will be harder (section 9). A frame-by-frame decision leaves errors, but alignment is not a
# frame-by-frame decision: order helps.
#
# **What kind of alignment this is.** The space was trained on *labelled frames*: every training frame came with
# its word. Aligning with it is therefore **forced alignment** in the speech-recognition sense: a frame
# classifier trained on labelled frames gives each frame a posterior over words, and a monotone path through
# those posteriors is found for a sequence whose content is known (here, through the video, whose frames the
# space reads almost perfectly). It is not alignment learned without timing labels — that harder problem is
# exercise 5. The naive pairings below use no training at all, and the attention aligner of section 8 is also
# trained with frame-level token labels; compare the methods with that in mind.
#
# ## 6. Dynamic time warping
# DTW (Sakoe & Chiba 1978) finds the cheapest **path** through a cost matrix $C$ (speech frames × video frames)
# that starts at the first pair, ends at the last, and only moves forward: by one speech frame, one video
# frame, or both. Its cost obeys a recursion that fills a table $R$:
#
# $$R_{i,j} = C_{i,j} + \min\big(R_{i-1,j-1},\ R_{i-1,j},\ R_{i,j-1}\big),\qquad R_{0,0}=0,\ R_{i,0}=R_{0,j}=\infty,$$
#
# and $\mathrm{DTW}(C) = R_{N,M}$. Here it is with two loops, the way you would write it first:


# %%
def dtw_with_loops(C):
    n, m = C.shape
    R = np.full((n + 1, m + 1), np.inf)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            R[i, j] = C[i - 1, j - 1] + min(R[i - 1, j - 1], R[i - 1, j], R[i, j - 1])
    return R[n, m]


C = torch.rand(7, 11, generator=torch.Generator().manual_seed(0))
value, path = dtw(C)
print(f"loops: {dtw_with_loops(C.numpy()):.4f} · mmlab.align.dtw: {value.item():.4f}")
print(path.int())
assert abs(dtw_with_loops(C.numpy()) - value.item()) < 1e-5

# %% [markdown]
# `mmlab.align.dtw` computes the same table without the double loop: every cell of an anti-diagonal
# ($i + j$ constant) depends only on the two previous anti-diagonals, so a whole anti-diagonal — for a whole
# batch of episodes of different lengths — is one tensor operation, on the CPU or a GPU. The path is read off as
# the *gradient* of $R_{N,M}$ with respect to $C$: it is 1 exactly on the cells the minimum went through.
#
# **The cost matters.** The space gives two natural costs between a speech frame $s$ and a video frame $t$:
# the cosine distance $1 - \cos(z_s, z_t)$, and minus the log-probability that both show the same word,
# $-\log \sum_w p(w\mid s)\,p(w\mid t)$. DTW on the second is the forced alignment described above. Which cost
# to use is a choice, so it is made on val (section 9). One validation batch, for a first look:

# %%
b = val_sets[1.0, seeds[0]]
print(
    f"val, warp 1, seed {seeds[0]}: pair proportionally {alignment_score('proportional', b):.3f} · DTW on 1 − cos "
    f"{alignment_score('dtw_cosine', b, space0):.3f} · DTW on −log p(same word) {alignment_score('dtw', b, space0):.3f}"
)

# %% [markdown]
# ## 7. Soft-DTW, and why it needs its divergence
# DTW's minimum is not differentiable in a useful way. Soft-DTW (Cuturi & Blondel, ICML 2017) replaces it by
# a smooth minimum, $\min_\gamma(a_1,\dots) = -\gamma \log\sum_k e^{-a_k/\gamma}$, which turns the cost into a
# soft minimum over *all* paths $A$:
#
# $$\mathrm{sdtw}_\gamma(C) = -\gamma \log \sum_{A} e^{-\langle A, C\rangle/\gamma},\qquad
# \mathrm{DTW}(C) - \gamma \log |\mathcal{A}| \;\le\; \mathrm{sdtw}_\gamma(C) \;\le\; \mathrm{DTW}(C),$$
#
# where $|\mathcal{A}|$ is the number of paths (a Delannoy number). Its gradient
# $\nabla_C\,\mathrm{sdtw}_\gamma$ is the **expected alignment**: the average path, each weighted by
# $e^{-\langle A, C\rangle/\gamma}$. As $\gamma \to 0$ both become DTW's. We check the bound on an episode's cost.

# %%
ep = make_alignment_episode("val", warp=0.5, index=1, seed=1000)
with torch.no_grad():
    cost = space0.cost(to_device(collate_episodes([ep]), device))[0].cpu()
n, m = cost.shape
n_paths = sum(math.comb(n - 1, k) * math.comb(m - 1, k) * 2**k for k in range(min(n, m)))  # Delannoy(n-1, m-1)
exact = dtw(cost)[0].item()
print(f"cost matrix {n}×{m}, log |paths| = {math.log(n_paths):.1f}, DTW = {exact:.3f}")
gammas = [1.0, 0.1, 0.01, 0.001]
for g in gammas:
    soft = soft_dtw(cost.double(), g).item()
    print(
        f"γ = {g:<6} sdtw = {soft:9.3f}   DTW − sdtw = {exact - soft:8.4f}  ≤ γ·log|paths| = {g * math.log(n_paths):8.3f}"
    )
    assert -1e-3 <= exact - soft <= g * math.log(n_paths) + 1e-3

# %% [markdown]
# The expected alignment for three values of γ. With γ = 1 it is a broad band around the path; as γ shrinks it
# concentrates on the cheapest paths. (This cost has many near-ties — frames the space is sure about cost ~0 —
# so at small γ it averages several equally cheap paths rather than picking one.) The check after the figure:
# the expected cost of a path falls to the DTW cost as γ → 0.

# %%
fig, axes = new_figure(1, 3, size=(12, 3.6))
for ax, g in zip(axes, (1.0, 0.1, 0.01)):
    expected = soft_alignment(cost, g)
    im = ax.imshow(expected.numpy(), origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set(title=f"expected alignment, γ = {g}", xlabel="video frame (40 ms)", ylabel="speech frame (40 ms)")
fig.colorbar(im, ax=axes[-1], label="probability the pair is on the path")
fig.suptitle(f"soft-DTW's expected alignment on “{ep.transcript}” concentrates on the cheapest paths as γ → 0")
fig

# %%
gaps = []
for g in (1.0, 0.1, 0.01):
    expected = soft_alignment(cost.double(), g)
    gaps.append((expected * cost).sum().item() - exact)  # expected cost of a path minus the cheapest path's cost
    print(f"γ = {g:<5} expected path cost − DTW = {gaps[-1]:.4f}")
assert all(gap >= -1e-6 for gap in gaps) and gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01 * exact

# %% [markdown]
# **The pitfall.** Soft-DTW is *not* zero for identical sequences — it is negative, because many near-optimal
# paths each add to the sum — and a different sequence can score *lower* than the sequence itself. Below, `x`
# is a short sine and `y` the same curve sampled twice as slowly: soft-DTW prefers `y` to `x` itself, so as
# a loss its minimum is not at the target. The **soft-DTW divergence** (Blondel, Mensch &
# Vert, AISTATS 2021) subtracts the self-terms,
#
# $$D_\gamma(x, y) = \mathrm{sdtw}_\gamma(x, y) - \tfrac12\,\mathrm{sdtw}_\gamma(x, x) - \tfrac12\,\mathrm{sdtw}_\gamma(y, y),$$
#
# which is 0 for identical inputs, whatever the cost. **Non-negative only under a condition on the cost.** Write
# $K(x, y) = e^{-\mathrm{sdtw}_\gamma(x, y)/\gamma} = \sum_A \prod_{(i,j)\in A} k(x_i, y_j)$ with the local
# kernel $k = e^{-c/\gamma}$ (the *global alignment kernel*); then
# $D_\gamma = -\gamma \log \big(K(x,y)/\sqrt{K(x,x)\,K(y,y)}\big)$, which is $\ge 0$ whenever $K$ is a
# positive-definite kernel (Cauchy–Schwarz). Cuturi et al. (2007) show that $K$ is positive definite when
# $k/(1+k)$ is, and Blondel et al. prove $D_\gamma \ge 0$ that way. For the squared-Euclidean cost $k$ is a
# Gaussian kernel, but $k/(1+k)$ need not be positive definite, so the proof does not cover it. Their
# **log-augmented cost** $c(x, y) = \tfrac12\lVert x-y\rVert^2 + \log\big(2 - e^{-\frac12\lVert x-y\rVert^2}\big)$ does at
# $\gamma = 1$: $k = g/(2-g)$ with $g = e^{-\frac12\lVert x-y\rVert^2}$, so $k/(1+k) = g/2$
# (`soft_dtw_divergence(x, y, cost="log_augmented")`; tested on random pairs in `tests/test_align.py`).

# %%
x = torch.sin(torch.linspace(0, 3, 20))[:, None]
y = torch.sin(torch.linspace(0, 3, 40))[:, None]
for g in (1.0, 0.1):
    sxx, sxy = soft_dtw(pairwise_cost(x, x), g).item(), soft_dtw(pairwise_cost(x, y), g).item()
    dxx, dxy = soft_dtw_divergence(x, x, g).item(), soft_dtw_divergence(x, y, g).item()
    print(f"γ = {g}: sdtw(x, x) = {sxx:7.3f}, sdtw(x, y) = {sxy:7.3f} | D(x, x) = {dxx:.1e}, D(x, y) = {dxy:.3f}")
    assert sxx < 0 and sxy < sxx  # the sequence itself is not the closest one...
    assert abs(dxx) < 1e-5 and dxy > 0  # ...under the divergence it is
d_log = soft_dtw_divergence(x, y, 1.0, cost="log_augmented").item()
print(
    f"log-augmented cost, γ = 1: D(x, x) = {soft_dtw_divergence(x, x, 1.0, cost='log_augmented').item():.1e}, "
    f"D(x, y) = {d_log:.3f} (≥ 0 guaranteed)"
)
assert d_log > 0 and abs(soft_dtw_divergence(x, x, 1.0, cost="log_augmented").item()) < 1e-5

# %% [markdown]
# ## 8. Cross-modal attention as an aligner
# DTW assumes that time only runs forward. Attention assumes nothing about order: each speech frame (query)
# spreads one unit of weight over all video frames (keys). We feed it the frozen shared-space embeddings plus
# features of each frame's *relative* position $r = t/(T-1)$ in its own stream,
# $[\sin(\pi k r), \cos(\pi k r)]_{k=1..4}$, and train only its projections. The loss asks each spoken frame to
# put its attention on the video frames of its own token:
#
# $$\mathcal{L} = -\frac{1}{|S|}\sum_{s \in S} \log \sum_{t:\ \mathrm{token}(t) = \mathrm{token}(s)} w_{s,t}.$$
#
# A speech frame is then paired with the video frame it attends to most. As for the space, the epoch (up to 12)
# is chosen on the validation episodes, here by the attention's alignment accuracy.


# %%
def train_aligner(space, train, seed, epochs=12):
    """Train an AttentionAligner on the frozen space's embeddings of the training episodes; the epoch is chosen
    on validation episodes."""
    seed_everything(seed)
    with torch.no_grad():  # the space is frozen: embed the training episodes once
        t = to_device(train, device)
        z_speech = space.speech(t["speech"], t["speech_mask"]).cpu()
        z_video = space.video(t["video"], t["video_mask"]).cpu()
    loader = make_loader(
        z_speech,
        train["speech_mask"],
        z_video,
        train["video_mask"],
        train["speech_token"],
        train["video_token"],
        train["speech_voiced"],
        batch_size=32,
        shuffle=True,
        seed=seed,
    )
    aligner = AttentionAligner(space_dim=space.dim, dim=32, heads=2)

    def forward(aligner, batch):
        z_speech, speech_mask, z_video, video_mask, speech_token, video_token, voiced = batch
        return aligner(z_speech, speech_mask, z_video, video_mask), (speech_token, video_token, voiced)

    val = selection_batch(seed)
    best = KeepBest(lambda aligner: alignment_score("attention", val, space, aligner), name="val_alignment")
    fit(
        aligner,
        loader,
        epochs=epochs,
        lr=1e-2,
        forward_fn=forward,
        after_epoch=best,
        device=device,
        desc=f"aligner seed {seed}",
        loss_fn=lambda weights, y: segment_attention_loss(weights, *y),
    )
    return best.restore(aligner).eval()


aligner0 = train_aligner(space0, train0, seed=seeds[0])
print(
    f"val, warp 1, seed {seeds[0]}: attention "
    f"{alignment_score('attention', val_sets[1.0, seeds[0]], space0, aligner0):.3f}"
)

# %% [markdown]
# ## 9. The evidence: choose on val, then report on test, over five seeds
# For each seed we train a fresh space and aligner (different initialisation and training episodes; each
# epoch chosen on val). `alignment_experiment` scores every method of `ALIGN_METHODS` at every warp on one
# split's episodes of that seed and returns one (seeds × warps) array of accuracies per method.
# How these numbers are made and what the asserts certify:
# [How this course measures](00_setup.ipynb#How-this-course-measures).


# %%
def train_both(seed):
    """A fresh shared space and attention aligner for one seed, each with its epoch chosen on val."""
    space, _, train, _ = train_space(seed)
    return space, train_aligner(space, train, seed)


trained = {seeds[0]: (space0, aligner0)} | {s: train_both(s) for s in seeds[1:]}

# %% [markdown]
# **The choices, on val only.** This cell sees validation accuracies and nothing else. It chooses the cost
# for DTW (1 − cos or −log p(same word)) and the method to report as "the aligner": the one with the best mean
# validation accuracy over the five warps.

# %%
acc_val = alignment_experiment(train_both, val_sets, seeds, warps, trained=trained)
print("split: VAL (seen voices, unseen recordings and images) — mean ± std over seeds")
print(f"{'method':30s}" + "".join(f"warp {w:<7}" for w in warps))
for m in ALIGN_METHODS:
    mean, std = acc_val[m].mean(0), acc_val[m].std(0, ddof=1)
    print(f"{ALIGN_METHOD_LABELS[m]:30s}" + "".join(f"{100 * a:5.1f}±{100 * e:<5.1f} " for a, e in zip(mean, std)))
val_mean = {m: acc_val[m].mean() for m in ALIGN_METHODS}
best_cost = max(("dtw", "dtw_cosine"), key=val_mean.get)
chosen = max(ALIGN_METHODS, key=val_mean.get)
print(f"\nchosen on val: DTW cost {ALIGN_METHOD_LABELS[best_cost]!r}; best method {ALIGN_METHOD_LABELS[chosen]!r}")

# %% [markdown]
# **The report, on test, read once.** Test episodes: the two unseen voices and unseen images, 24 per warp and
# seed (stream 1000 + seed of the test split). Nothing below changes a model or a choice.

# %%
test_sets = alignment_test_sets(warps, seeds, n=24, split="test")
acc = alignment_experiment(train_both, test_sets, seeds, warps, trained=trained)
chance_test = np.mean([chance_accuracy(b) for b in test_sets.values()])
alignment_curves_figure(acc, warps, chance=chance_test, split="test")

# %%
print("split: TEST (unseen voices and images) — reported once, after the last choice")
for i, w in enumerate(warps):
    print(f"warp {w}:")
    for m in ALIGN_METHODS:
        print(f"  {ALIGN_METHOD_LABELS[m]:30s} {format_spread(acc[m][:, i], 100, ' %')}")
print("\nval − test at warp 1 (the cost of a new voice), mean over seeds:")
for m in ("dtw_cosine", "dtw", "attention"):
    print(f"  {ALIGN_METHOD_LABELS[m]:30s} {100 * (acc_val[m][:, -1] - acc[m][:, -1]).mean():+.1f} pts")

# %% [markdown]
# **What the seeds show** (asserted below; each comparison of methods is a 95% paired bootstrap interval over
# the 5 seeds and a per-seed sign count, with the margin stated here):
#
# * naive pairing is perfect in step and, at warp 1, closer to chance than to perfect in every seed;
# * DTW on −log p(same word) — val's choice — stays above 80% at every warp in every seed, and beats the other
#   cost on the mean over warps in every seed, with an interval above 2 points: the choice made on val holds on
#   test;
# * the cost matters, and the better cost depends on the warp: at warp 1, −log p(same word) beats the cosine
#   distance by more than 5 points in every seed; in step, the cosine cost is ahead by more than 2 points in
#   every seed (our untested reading: a cost that is sure of itself is also sure of its mistakes);
# * attention recovers a large part of what naive pairing loses (more than 15 points above proportional pairing
#   at warp 1) but stays more than 5 points below DTW at warp 1 in every seed: it does not know that time only
#   runs forward, so a speech frame it mistakes can jump anywhere. In step it is more than 5 points below
#   pairing by index in every seed — knowing the rule beats learning around it.

# %%
n_seeds = len(seeds)


def certified(a, b, margin, seed_margin=None):
    """A beats B: the 95% paired bootstrap lower bound is above ``margin``, and A leads by more than
    ``seed_margin`` (default: ``margin``) in every seed."""
    ci = paired_bootstrap(a, b)
    seed_margin = margin if seed_margin is None else seed_margin
    return ci.low > margin and sign_count(a, b, seed_margin) == n_seeds, ci.format(100, " pts")


for m in ("index", "proportional"):
    assert (acc[m][:, 0] == 1).all() and (acc[m][:, -1] < (1 + chance_test) / 2).all(), m
assert chosen == best_cost == "dtw" and (acc["dtw"] > 0.8).all()
claims = {
    "DTW −log p vs 1 − cos, mean over warps (CI > 2 pts, every seed)": certified(
        acc["dtw"].mean(1), acc["dtw_cosine"].mean(1), 0.02, seed_margin=0.0
    ),
    "warp 1: DTW −log p vs 1 − cos (> 5 pts)": certified(acc["dtw"][:, -1], acc["dtw_cosine"][:, -1], 0.05),
    "warp 0: DTW 1 − cos vs −log p (> 2 pts)": certified(acc["dtw_cosine"][:, 0], acc["dtw"][:, 0], 0.02),
    "warp 1: attention vs proportional (> 15 pts)": certified(
        acc["attention"][:, -1], acc["proportional"][:, -1], 0.15
    ),
    "warp 1: DTW −log p vs attention (> 5 pts)": certified(acc["dtw"][:, -1], acc["attention"][:, -1], 0.05),
    "warp 0: index vs attention (> 5 pts)": certified(acc["index"][:, 0], acc["attention"][:, 0], 0.05),
}
for claim, (ok, interval) in claims.items():
    print(f"{claim:62s} {interval}  {'holds' if ok else 'FAILS'}")
assert all(ok for ok, _ in claims.values())

# %% [markdown]
# ## 10. Explore: warp, noise, and what each aligner sees
# Left: the cost matrix (speech frames up, video frames across) with the DTW path in red and proportional
# pairing dashed; dotted lines are the true token boundaries, so the right cells are the blocks where a row band
# and a column band of the same token cross. Right: the attention weights and their arg-max. Move the warp and
# watch the proportional line leave the blocks while the DTW path follows them; add noise (pixel noise on the
# video and white noise on the speech) and watch where each method breaks first.

# %%
# NBVAL_IGNORE_OUTPUT
style = {"description_width": "initial"}  # room for each control's full label
_ = interact(
    alignment_figure,
    space=fixed(space0),
    aligner=fixed(aligner0),
    warp=FloatSlider(value=0.6, min=0.0, max=1.0, step=0.1, description="warp", style=style),
    noise=FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="noise", style=style),
    episode=IntSlider(value=0, min=0, max=30, description="episode", style=style),
    split=Dropdown(options=["test", "val", "train"], value="test", description="split", style=style),
)
# %% [markdown]
# ## 11. Spatial grounding: a word that points at a place
# Alignment is not only about time. In a canvas with three digits in random cells of a 4×4 grid, the query
# "where is the seven?" should point at one cell. We make the query word attend over the 16 patches of 8×8
# pixels with the same `CrossModalAttention`: the word (a 32-d embedding) gives the query, each patch (64
# pixels — a different width) gives a key, and the attention weights are the answer. It is trained on 1,000
# canvases of training images with their true cells (cross-entropy on the weights), its epoch (up to 10) is
# chosen on 300 canvases of validation images, and it is tested once on 300 canvases of test images, with
# pixel noise of std 0.3 on all of them. The margins here are tens of points, so three seeds suffice.

# %%
val_canvases = make_grounding_canvases(300, "val", image_noise=0.3, seed=100)
show_images(
    val_canvases.canvas[:6], labels=val_canvases.text[:6], ncols=6, title="grounding canvases (val) and their queries"
)


# %%
def localisation(model, canvases):
    """Share of canvases where the attention's arg-max is the named digit's cell."""
    weights = predict(model, [canvases.patches(), canvases.query])
    return (weights.argmax(-1) == canvases.target_cell).float().mean().item()


def train_grounding(seed, n=1000, epochs=10):
    """Train GroundingAttention on training canvases; the epoch is chosen on the validation canvases."""
    seed_everything(seed)
    canvases = make_grounding_canvases(n, "train", image_noise=0.3, seed=seed)
    loader = make_loader(
        canvases.patches(), canvases.query, canvases.target_cell, batch_size=64, shuffle=True, seed=seed
    )
    model = GroundingAttention(word_dim=32, dim=32)

    def forward(model, batch):
        patches, query, cell = batch
        return model(patches, query).clamp_min(1e-9).log(), cell  # log attention weights over the 16 patches

    best = KeepBest(lambda model: localisation(model, val_canvases), name="val_localisation")
    fit(
        model,
        loader,
        epochs=epochs,
        lr=1e-2,
        forward_fn=forward,
        loss_fn=F.nll_loss,
        after_epoch=best,
        device=device,
        desc=f"grounding seed {seed}",
    )
    print(
        f"grounding seed {seed}: epoch chosen on val {best.best_epoch}, val localisation {100 * best.best_score:.1f}%"
    )
    return best.restore(model).eval()


def attention_map(model, canvases, query):
    """The model's attention weights over the 16 patches for each canvas and query word: (N, 16), on the CPU."""
    return predict(model, [canvases.patches(), query])


grounding_seeds = seeds[:3]
models = {s: train_grounding(s) for s in grounding_seeds}

# %% [markdown]
# The test canvases, read once, after the epochs were chosen:

# %%
test_canvases = make_grounding_canvases(300, "test", image_noise=0.3, seed=100)
maps = {s: attention_map(models[s], test_canvases, test_canvases.query) for s in grounding_seeds}
loc = np.array([(maps[s].argmax(-1) == test_canvases.target_cell).float().mean().item() for s in grounding_seeds])
most_ink = (test_canvases.patches().flatten(2).sum(-1).argmax(-1) == test_canvases.target_cell).float().mean().item()
print(f"split: TEST — localisation accuracy {format_spread(loc, 100, ' %')}")
print(
    f"baselines: a random patch {100 / 16:.1f}%, a random one of the 3 digits {100 / 3:.1f}%, "
    f"the patch with the most ink {100 * most_ink:.1f}%"
)
assert (loc > 0.8).all() and sign_count(loc, np.full(len(loc), most_ink), margin=0.4) == len(loc)

# %%
grounding_figure(
    test_canvases.canvas[:6],
    maps[seeds[0]][:6],
    test_canvases.text[:6],
    grid=4,
    target_cell=test_canvases.target_cell[:6],
)

# %% [markdown]
# **A limit to know.** Softmax weights always sum to one, so the attention points *somewhere* even when the
# named digit is not on the canvas. Ask each test canvas for a digit it does not contain:

# %%
absent = torch.tensor([next(d for d in range(10) if d not in row) for row in test_canvases.digits.tolist()])
w_absent = attention_map(models[seeds[0]], test_canvases, absent)
on_a_digit = (w_absent.argmax(-1)[:, None] == test_canvases.cells).any(-1).float().mean().item()
print(
    f"mean largest weight: digit present {maps[seeds[0]].max(-1).values.mean():.2f}, "
    f"absent {w_absent.max(-1).values.mean():.2f}; for absent digits the arg-max is on some other digit "
    f"{100 * on_a_digit:.0f}% of the time"
)
assert w_absent.max(-1).values.mean() > 0.5 and on_a_digit > 0.6

# %% [markdown]
# Even for a digit that is not there, the model puts most of its weight on one patch, usually one of the
# other digits. Attention weights are not a detector: "is it there?" is a separate question that needs its own
# output (exercise 6).

# %% [markdown]
# ## 12. "From 68% to 92%": what a claim like that needs
# The article this course starts from says its alignment recipe lifts "video-text alignment accuracy" from 68%
# to 92%. There is no data set, no definition of the metric, no baseline and no seeds — and, as section 3
# showed, the code does not run. A number like that needs at least four things:
#
# 1. **data** — what is aligned to what, how many items, and which are held out;
# 2. **metric** — what counts as right, computed over what;
# 3. **baseline** — the simplest method, run on the same data (here: pairing by index or proportionally);
# 4. **seeds** — training and data randomness, reported as mean ± spread, with a paired interval for the gain;
#
# and a **protocol**: every choice made on validation data, the test number read once. Here are the course's own
# numbers with all of it (and what kind of alignment they measure: forced alignment with a frame classifier
# trained on labelled frames, section 5):

# %%
n_frames = int(sum(test_sets[1.0, s]["speech_voiced"].sum() for s in seeds))
n_test, n_train = len(test_sets[1.0, seeds[0]]["digits"]), len(train0["digits"])
print(f"data:     speech ↔ video of AV-Digits strings, {n_test} test episodes per seed at warp 1 (unseen voices and")
print(f"          images), {n_frames} spoken frames in total; trained on {n_train} episodes of the training voices")
print("metric:   share of spoken frames paired with a video frame of the same transcript token")
print(
    f"baseline: pair proportionally {format_spread(acc['proportional'][:, -1], 100, ' %')} "
    f"(chance {100 * chance_test:.0f}%)"
)
print(f"method:   {ALIGN_METHOD_LABELS[chosen]} (chosen on val) {format_spread(acc[chosen][:, -1], 100, ' %')}")
print(f"gain:     {paired_bootstrap(acc[chosen][:, -1], acc['proportional'][:, -1]).format(100, ' pts')}")
print(f"seeds:    {seeds} (space, aligner and episodes all change with the seed)")
print("protocol: epochs, DTW cost and method chosen on val episodes; test read once, in section 9")

# %% [markdown]
# ## Exercises
# Code exercises are checked on the spot; the solutions are in collapsed cells (click to reveal in JupyterLab;
# in Colab, 'Show code'). Try first.
#
# **Exercise 1 — the soft minimum.** Soft-DTW differs from DTW in one place: the hard `min` of the recursion
# becomes $\min_\gamma(a) = -\gamma \log \sum_k e^{-a_k/\gamma}$ (section 7). Write `soft_min(a, gamma)` over the
# last axis of a tensor. Why it matters: it is what makes the whole table differentiable, and written naively
# it breaks exactly where soft-DTW is used — for accumulated costs of 10 and γ = 0.01, $e^{-a/\gamma} = e^{-1000}$
# underflows to 0 even in float64, and the result becomes ∞. *Hint:* $\log\sum_k e^{x_k} = m + \log\sum_k e^{x_k - m}$ with $m = \max_k x_k$;
# `torch.logsumexp` does that shift for you.


# %%
# ✏️ Exercise 1: your code here
def soft_min(a, gamma):
    """Soft minimum over the last axis: min_γ(a) = -γ · log Σ_k exp(-a_k / γ).

    a: tensor (..., K); gamma > 0. Returns a tensor (...). Must not overflow for large a / γ, and must stay
    differentiable (no numpy, no .item()).
    """
    raise NotImplementedError


# %%
from mmlab.exercises import check_soft_dtw, check_soft_min

check_soft_min(soft_min)


# %% tags=["solution"] jupyter={"source_hidden": true}
# @title Solution { display-mode: "form" }
def soft_min(a, gamma):
    """Soft minimum over the last axis: -γ · log Σ_k exp(-a_k / γ), stable and differentiable."""
    # min_γ(a) = -γ · log Σ_k exp(x_k) with x = -a/γ. torch.logsumexp subtracts max_k x_k before exp and adds it
    # back after the log, so the largest term is exp(0) = 1: nothing overflows, and the sum is never 0 (no log 0).
    # It stays in torch, so autograd differentiates it: the gradient is softmax(-a/γ), a weight per entry.
    return -gamma * torch.logsumexp(-a / gamma, dim=-1)


check_soft_min(soft_min)

# %% [markdown]
# **Exercise 2 — soft-DTW by its recursion.** Write `soft_dtw_loops(cost, gamma)`: the two-loop DTW of section 6
# (`dtw_with_loops`) with the hard minimum replaced by the soft one. Why it matters: this recursion *is* soft-DTW;
# `mmlab.align.soft_dtw` only computes the same table an anti-diagonal at a time, and the checker compares your
# value with it. *Hint:* build the table as a Python list of lists of 0-d tensors (∞ on the borders,
# `R[0][0] = 0`), and apply a soft minimum to `torch.stack` of the three predecessors — diagonal, up, left.


# %%
# ✏️ Exercise 2: your code here
def soft_dtw_loops(cost, gamma):
    """Soft-DTW value of a cost matrix, by its recursion with two loops.

    cost: tensor (N, M); gamma > 0. Fill a table R of size (N+1) × (M+1) with R[0, 0] = 0 and R[i, 0] = R[0, j]
    = ∞ elsewhere, then for i = 1..N, j = 1..M:
        R[i, j] = cost[i-1, j-1] + min_γ(R[i-1, j-1], R[i-1, j], R[i, j-1]).
    Returns R[N, M] (a number or a 0-d tensor).
    """
    raise NotImplementedError


# %%
check_soft_dtw(soft_dtw_loops)


# %% tags=["solution"] jupyter={"source_hidden": true}
# @title Solution { display-mode: "form" }
def soft_dtw_loops(cost, gamma):
    """Soft-DTW value of a cost matrix (N, M): R[N, M] of the recursion with the soft minimum."""
    n, m = cost.shape
    inf = torch.tensor(math.inf, dtype=cost.dtype)
    # R[i][j] = soft cost of all paths from (1, 1) to (i, j). Row 0 and column 0 are ∞ except R[0][0] = 0, so
    # every path starts at the first pair: an ∞ predecessor gets weight exp(-∞/γ) = 0 in the soft minimum.
    # A list of 0-d tensors rather than one tensor written in place keeps autograd's graph simple.
    R = [[inf] * (m + 1) for _ in range(n + 1)]
    R[0][0] = torch.zeros((), dtype=cost.dtype)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            previous = torch.stack([R[i - 1][j - 1], R[i - 1][j], R[i][j - 1]])  # diagonal, up, left
            soft_minimum = -gamma * torch.logsumexp(-previous / gamma, dim=0)  # stable, as in exercise 1
            R[i][j] = cost[i - 1, j - 1] + soft_minimum
    return R[n][m]  # the (N+1)×(M+1) table's last cell, not R[N-1][M-1]


check_soft_dtw(soft_dtw_loops)

# %% [markdown]
# **Exercise 3 — silence.** Pauses carry no word, yet DTW must pair them with something. Add an eleventh
# "silence" word to the space (train pause frames toward it) and compare the two DTW costs again at warp 1 (on
# val; read test once, at the end).
#
# <details><summary>Answer</summary>
#
# `AlignmentSpace` has 10 word embeddings (`word_embedding = nn.Embedding(10, dim)`): give a copy of it 11, and
# in `train_space`'s `forward` add the pause frames — `speech_mask & ~speech_voiced` — with target 10. Video frames
# never show silence, so for a pause frame $p(\text{silence}\mid s)$ is high and $-\log \sum_w p(w\mid s)p(w\mid t)$
# is about the same against every video frame: the pause no longer pulls the path toward any digit, and DTW can
# place it wherever its neighbours want. Measure as section 9 does: `alignment_score("dtw", ...)` and
# `"dtw_cosine"` at warp 1 on `val_sets`, per seed, with `paired_bootstrap` against the space without silence;
# then read test once. This notebook has not measured it. Note that the metric scores only spoken frames, so a
# gain can only come from better paths around the pauses, not from scoring the pauses themselves.
#
# </details>
#
# **Exercise 4 — order for attention.** Use $-\log w_{s,t}$ from the trained aligner as a DTW cost. Does
# monotonic decoding of the attention map close the gap to DTW on the shared space?
#
# <details><summary>Answer</summary>
#
# For each val episode, take the aligner's weights (speech frames × video frames, the right panel of the
# section-10 widget), form `cost = -(w + 1e-9).log()` over the real frames, run `dtw(cost)` and pair every speech
# frame with the video frame its path visits (the way the `"dtw"` method decodes the space's cost); score with
# the same alignment accuracy on spoken frames. Compare three numbers per seed at warp 1 on val, with paired
# intervals: attention arg-max, attention + DTW, and DTW on −log p(same word). The lesson's reading of the gap is
# that attention "does not know that time only runs forward". If monotonic decoding closes most of it, that
# reading is supported; if a large gap remains, the attention weights themselves carry less than the space's
# posteriors. Not measured here.
#
# </details>
#
# **Exercise 5 — without frame labels.** Real recordings come with a transcript but no timing. Train the speech
# encoder with the soft-DTW divergence between its frame embeddings and the transcript's word embeddings (one
# vector per token) instead of frame-level InfoNCE. How close do you get?
#
# <details><summary>Answer</summary>
#
# Per training episode: `x = space.speech(...)` for its real frames (T, d), `y = space.words[digits]` (K, d), one
# row per token in transcript order, and the loss `soft_dtw_divergence(x, y, gamma)` — the divergence, never raw
# soft-DTW, which section 7 showed is not minimised at the target. Two traps: the loss is happy if frames and
# words all collapse onto one point (then every divergence is 0), so keep the word embeddings fixed (e.g. from a
# space trained on the video, whose frames need no timing) or add a term that keeps words apart; and pauses have
# no token, so they must be absorbed by the path. Evaluate exactly as the lesson does (DTW alignment accuracy at
# every warp, epochs chosen on val, 5 seeds, test once) and report the gap to the frame-supervised space with a
# paired interval. Not measured here; D3TW and CTC (references) learn from transcripts the same way.
#
# </details>
#
# **Exercise 6 — "not here".** Give `GroundingAttention` one extra learned key that means "absent", train it on
# canvases where the query is sometimes absent (target: that key), and measure how often it answers correctly.
#
# <details><summary>Answer</summary>
#
# Append a learned vector (an `nn.Parameter` of the patch width, 64) to the 16 patches, so the softmax runs over
# 17 options; for part of the training canvases replace the query by a digit that is not on the canvas (as the
# `absent` cell of section 11 does) and set the target to 16. Choose the epoch on val and report on test two
# numbers, never one: the share of absent queries answered "absent", and the localisation accuracy on present
# queries. A model that always says "absent" scores perfectly on the first and 0 on the second. Section 11
# measured the problem this fixes: without such a key, an absent digit still gets most of the weight on one
# patch, usually another digit. How much of the present-query accuracy the fix costs is not measured here.
#
# </details>
#
# **Exercise 7 — grounding without boxes.** Train the model only to *name* the queried digit from the attended
# patch features (no target cells). Does localisation emerge? Check whether the attention pattern itself leaks
# the query (hint: what does it score on blank canvases?).
#
# <details><summary>Answer</summary>
#
# Put a linear classifier on the attended patch features (the first output of `model.attention`, the
# `CrossModalAttention` inside `GroundingAttention`) and train it with
# cross-entropy on the queried digit; use the target cells only to *measure* localisation (arg-max weight on the
# right cell), as section 11 does. Then feed blank canvases (all-zero patches) with each query: if the classifier
# still names the queried digit well above the 10% chance level, the answer reaches it by a path other than the
# pixels (the query leaking through the attention output), and "it names the digit" says nothing about where it
# looked. Localisation "emerges" only if it is clearly above the baselines of section 11 (a random patch, the
# patch with the most ink). Not measured here.
#
# </details>
#
# **Exercise 8 — jitter.** `make_grounding_canvases(..., jitter=2)` shifts digits across patch borders. What
# happens to localisation, and would overlapping patches (stride 4) help?
#
# <details><summary>Answer</summary>
#
# Build val and test canvases with `jitter=2` (train with and without it: robustness and training on the shift are
# different questions), and compare localisation with the `jitter=0` models over the same 3 seeds with a paired
# interval. A shifted digit spreads its ink over up to four patches, but its centre stays in its cell (the
# target), so look at how often the arg-max lands on a *neighbouring* cell. With 8×8 patches at stride 4 the grid
# has 7×7 = 49 overlapping patches, and some patch is always nearly centred on each digit; the target then has to
# be redefined (e.g. the patch whose centre is nearest the digit's centre), and the metric must say so. Not
# measured here.
#
# </details>
#
# ## Check your understanding
# 1. In section 3, `nn.MultiheadAttention` with `batch_first=False` ran without an error on two `(4, 16, 768)`
#    tensors. What did it compute, and why did no shape check catch it?
#
#    <details><summary>Answer</summary>
#
#    It read `(B, L, D)` as `(L, B, D)`: a "batch" of 16 sequences of length 4, where "sequence" j holds token j
#    of each of the 4 samples. Attention then ran *across the samples* at each position, so sample 0's output
#    depends on sample 1's image (the lesson measured the leak). With equal lengths every shape is consistent, so nothing can raise; only a test that changes one
#    sample and checks the others catches it.
#
#    </details>
#
# 2. Why is $\mathrm{sdtw}_\gamma(x, x) < 0$, and why does a loss built on raw soft-DTW not have its minimum at
#    the target?
#
#    <details><summary>Answer</summary>
#
#    $\mathrm{sdtw}_\gamma$ is a soft minimum over all paths, and a soft minimum is below the hard one by up to
#    $\gamma \log(\text{number of near-optimal terms})$. For $x$ against itself the diagonal path costs 0, and
#    many other paths cost almost 0, so the soft minimum is negative. A different $y$ with even more cheap paths
#    (the sine sampled twice as slowly in section 7) can go lower still. The divergence subtracts the self-terms,
#    is 0 at $y = x$, and is non-negative for costs such as the log-augmented one (at γ = 1).
#
#    </details>
#
# 3. At warp 1, DTW on the shared space beats attention; in step (warp 0), pairing by index beats attention.
#    What do both results say about building knowledge into an aligner?
#
#    <details><summary>Answer</summary>
#
#    Both are asserted over 5 seeds in section 9. DTW knows that time only runs forward, so a frame it misreads
#    cannot jump to a far-away token; attention must learn everything from data and can. In step, index pairing
#    *is* the right rule and is perfect by construction, while learned attention only approximates it. A known
#    constraint that holds in the data is worth more than capacity to learn around it; one that does not hold
#    (index pairing at warp 1) is worse than nothing.
#
#    </details>
#
# **Derivation: the soft minimum as γ → 0.** Show that for $a \in \mathbb R^K$ with $m = \min_k a_k$,
# $m - \gamma \log K \le \min_\gamma(a) \le m$, so $\min_\gamma(a) \to m$ as $\gamma \to 0$, and that its gradient
# tends to the indicator of the minimum (when the minimum is unique). Then explain the lesson's bound
# $\mathrm{DTW}(C) - \gamma \log |\mathcal A| \le \mathrm{sdtw}_\gamma(C) \le \mathrm{DTW}(C)$.
#
# <details><summary>Answer</summary>
#
# Factor out the largest term: $\sum_k e^{-a_k/\gamma} = e^{-m/\gamma} \sum_k e^{-(a_k - m)/\gamma}$, so
#
# $$\min_\gamma(a) = m - \gamma \log S,\qquad S = \sum_k e^{-(a_k - m)/\gamma}.$$
#
# Every exponent $-(a_k - m)/\gamma$ is $\le 0$, so each term is in $(0, 1]$, and the term of the minimum is exactly
# 1: hence $1 \le S \le K$, $0 \le \log S \le \log K$, and $m - \gamma\log K \le \min_\gamma(a) \le m$. Both bounds
# tend to $m$ as $\gamma \to 0$. (This factoring is also the stable way to compute it: the shift of exercise 1.)
# The gradient is $\partial \min_\gamma / \partial a_k = e^{-a_k/\gamma} / \sum_l e^{-a_l/\gamma} = \mathrm{softmax}(-a/\gamma)_k$;
# for $a_k > m$ its numerator relative to the minimum's term is $e^{-(a_k - m)/\gamma} \to 0$, so the weights tend to
# 1 on the (unique) minimum and 0 elsewhere — the hard minimum's gradient.
#
# Soft-DTW unrolls to one soft minimum over all paths, $\mathrm{sdtw}_\gamma(C) = \min_\gamma\big(\langle A, C\rangle\big)_{A \in \mathcal A}$,
# with $K = |\mathcal A|$ terms whose hard minimum is $\mathrm{DTW}(C)$: the same inequality gives the bound that
# section 7 checks, and the softmax over paths is why $\nabla_C\,\mathrm{sdtw}_\gamma$ is the expected alignment,
# which tends to the DTW path as γ → 0.
#
# </details>

# %% [markdown]
# ## Summary
# * Aligning two modalities is a question with a checkable answer only once you fix the data, the metric and a
#   baseline. Pairing frames by index or by relative position works only when the streams are in step.
# * The tempting recipe fails before it starts: wrong widths crash, `batch_first=False` silently attends across
#   the batch, `cat` needs equal lengths and assumes the alignment it should find, and without padding masks
#   the output depends on the batch. `CrossModalAttention` projects both sides to a shared width, is batch first,
#   masks padding and returns its weights — it is only the attention sub-layer of MulT's cross-modal block.
# * Comparing frames across modalities needs a **shared space**; InfoNCE learns one and also gives
#   probabilities, and the choice of cost on top of it matters. Trained on labelled frames, it makes DTW on
#   −log p(same word) a **forced alignment**.
# * **DTW** exploits that time runs forward and recovers most of the alignment at strong warp; **soft-DTW** makes
#   it differentiable, but compare sequences with its **divergence**, never with raw soft-DTW — non-negative
#   for certain only with a cost such as the log-augmented one.
# * Every choice (epochs, the DTW cost, the method) was made on validation episodes; test was read once.
# * **Cross-modal attention** recovers much of it without assuming order, and the same block grounds a word in
#   an image. Next: **Lesson 2 — efficient fusion**.

# %% [markdown]
# ## References
# **Data:** AV-Digits, the course's data set — its sources (scikit-learn's 8×8 digits, eSpeak NG voices) are cited
# in [Lesson 0's references](00_setup.ipynb#References).
#
# **Methods used in this lesson**
# * H. Sakoe, S. Chiba. Dynamic Programming Algorithm Optimization for Spoken Word Recognition. *IEEE Trans.
#   Acoustics, Speech, and Signal Processing* 26(1), 43–49, 1978.
#   [doi:10.1109/TASSP.1978.1163055](https://doi.org/10.1109/TASSP.1978.1163055) — DTW.
# * M. Cuturi, M. Blondel. Soft-DTW: a Differentiable Loss Function for Time-Series. *ICML*, 2017.
#   [arXiv:1703.01541](https://arxiv.org/abs/1703.01541) — the soft minimum and soft-DTW.
# * M. Blondel, A. Mensch, J.-P. Vert. Differentiable Divergences Between Time Series. *AISTATS*, 2021.
#   [arXiv:2010.08354](https://arxiv.org/abs/2010.08354) — the soft-DTW divergence and the log-augmented cost.
# * M. Cuturi, J.-P. Vert, Ø. Birkenes, T. Matsui. A Kernel for Time Series Based on Global Alignments. *ICASSP*,
#   2007. [doi:10.1109/ICASSP.2007.366260](https://doi.org/10.1109/ICASSP.2007.366260),
#   [arXiv:cs/0610033](https://arxiv.org/abs/cs/0610033) — the global alignment kernel and its positive
#   definiteness.
# * A. van den Oord, Y. Li, O. Vinyals. Representation Learning with Contrastive Predictive Coding. 2018.
#   [arXiv:1807.03748](https://arxiv.org/abs/1807.03748) — InfoNCE.
# * A. Vaswani, N. Shazeer, N. Parmar, et al. Attention Is All You Need. *NeurIPS*, 2017.
#   [arXiv:1706.03762](https://arxiv.org/abs/1706.03762) — scaled dot-product and multi-head attention.
# * Y.-H. H. Tsai, S. Bai, P. P. Liang, J. Z. Kolter, L.-P. Morency, R. Salakhutdinov. Multimodal Transformer
#   for Unaligned Multimodal Language Sequences. *ACL*, 2019. [arXiv:1906.00295](https://arxiv.org/abs/1906.00295)
#   — MulT's cross-modal attention.
# * K. Xu, J. Ba, R. Kiros, et al. Show, Attend and Tell: Neural Image Caption Generation with Visual Attention.
#   *ICML*, 2015. [arXiv:1502.03044](https://arxiv.org/abs/1502.03044) — attention weights over image regions as
#   "where the model looks".
# * M. McAuliffe, M. Socolof, S. Mihuc, M. Wagner, M. Sonderegger. Montreal Forced Aligner: Trainable Text-Speech
#   Alignment Using Kaldi. *Interspeech*, 2017. [doi:10.21437/Interspeech.2017-1386](https://doi.org/10.21437/Interspeech.2017-1386)
#   — forced alignment as practised in speech.
# * A. Radford, J. W. Kim, C. Hallacy, et al. Learning Transferable Visual Models From Natural Language
#   Supervision. *ICML*, 2021. [arXiv:2103.00020](https://arxiv.org/abs/2103.00020) — CLIP, InfoNCE with the
#   batch's captions as candidates (lesson 7).
#
# **Alternatives worth knowing**
# * A. Graves, S. Fernández, F. Gomez, J. Schmidhuber. Connectionist Temporal Classification: Labelling
#   Unsegmented Sequence Data with Recurrent Neural Networks. *ICML*, 2006.
#   [doi:10.1145/1143844.1143891](https://doi.org/10.1145/1143844.1143891) — CTC: learns from a transcript
#   without timing by summing over monotonic alignments, with a blank symbol for frames that carry no token.
# * C.-Y. Chang, D.-A. Huang, Y. Sui, L. Fei-Fei, J. C. Niebles. D3TW: Discriminative Differentiable Dynamic Time
#   Warping for Weakly Supervised Action Alignment and Segmentation. *CVPR*, 2019.
#   [arXiv:1901.02598](https://arxiv.org/abs/1901.02598) — soft-DTW-style alignment to a transcript (exercise 5).
# * N. Dvornik, I. Hadji, K. G. Derpanis, A. Garg, A. D. Jepson. Drop-DTW: Aligning Common Signal Between
#   Sequences While Dropping Outliers. *NeurIPS*, 2021. [arXiv:2108.11996](https://arxiv.org/abs/2108.11996) —
#   DTW that may skip frames (pauses, exercise 3).
# * D. Dwibedi, Y. Aytar, J. Tompson, P. Sermanet, A. Zisserman. Temporal Cycle-Consistency Learning. *CVPR*,
#   2019. [arXiv:1904.07846](https://arxiv.org/abs/1904.07846) — alignment learned without any labels.
# * A. Miech, J.-B. Alayrac, L. Smaira, I. Laptev, J. Sivic, A. Zisserman. End-to-End Learning of Visual
#   Representations from Uncurated Instructional Videos. *CVPR*, 2020. [arXiv:1912.06430](https://arxiv.org/abs/1912.06430)
#   — MIL-NCE, contrastive learning when speech and video are only roughly aligned.
# * A. Kamath, M. Singh, Y. LeCun, G. Synnaeve, I. Misra, N. Carion. MDETR — Modulated Detection for End-to-End
#   Multi-Modal Understanding. *ICCV*, 2021. [arXiv:2104.12763](https://arxiv.org/abs/2104.12763) — grounding
#   with boxes and a detector instead of attention weights over a fixed grid.
