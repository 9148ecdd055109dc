"""Measure the shipped model's quality bars (issue 5): coherent samples, text control, MOFT emergence.

Usage:
    python scripts/model_quality.py                          # the shipped model, full bars
    python scripts/model_quality.py --model runs/shipped/export --samples 16 --skip-decoding
    python scripts/model_quality.py --only text_effect --out docs/results/model_quality.json  # add one part
    python scripts/model_quality.py --out docs/results/model_quality.json --figure docs/results/pca_directions.png
    python scripts/model_quality.py --model runs/wan-i2v/export --samples 16 --skip-decoding --text-seeds 0
    (an image-to-video model, e.g. moft-tiny-wan-i2v: bars 1 and 2 from held-out clips' frame 0 and caption,
    and how well frame 0 keeps the image: ``image_to_video_quality``)
    (writes the JSON report with every sample and a Markdown table of the bars beside it)

Bars (measured, reported as fractions; nothing is asserted here):
    1. sample quality: of N unguided samples of constant-motion prompts, the share with one trackable
       object whose centroid path is straight (R^2 >= 0.9), consistent (mean cosine between steps
       >= 0.8) and at a speed in the training range;
    2. text: the share whose net motion is within 22.5 degrees of the direction named in the prompt;
    3. MOFT emerges: on held-out labelled videos (DDIM-inverted), 5-fold logistic-regression accuracy
       of the 8 motion directions from frame-0 features at the object's cell with content correlation
       removed (MOFT, all channels and motion channels only) against raw features; with its learning
       curve (accuracy on the first 8, 16, 32, ... videos per direction), since a linear classifier
       on 64-d features is data-limited at a hundred videos.
    An image-to-video model also: frame 0's PSNR against the image beside the VAE's round trip, and the
    share of samples that keep the image's object (``moft.eval.metrics.object_kept``: in every frame, no
    jump, its size kept), which bar 1 alone misses (an object the model paints elsewhere from frame 1 on
    still moves straight).
    Also (diagnostics, no bar): how much of the net motion the direction word decides, from the
    same noise under 'moving left/right/up/down' (variance split between words and the rest), and
    how far apart the text encoder puts prompts that differ in one direction, colour or shape word
    (if direction words come out nearly alike, no denoiser can follow them), and how much the
    denoiser's own loss on held-out clips rises when the caption names the opposite direction
    (0: it does not read the word at all; far more sensitive than sampling).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from moft.front.extract import nearest_step  # noqa: E402
from moft.method.features import remove_content_correlation, resize  # noqa: E402
from moft.method.inversion import clip_conditioning, noise_latents, reference_features  # noqa: E402
from moft.models.latents import encode_prompt, encode_video, vae_scale  # noqa: E402
from moft.eval.metrics import direction_success, object_kept, path_fit, track_centroid  # noqa: E402
from moft.method.channels import default_channels  # noqa: E402
from moft.models.loading import denoiser, load_pipeline  # noqa: E402
from moft.models.pipeline import default_video_size, is_flow  # noqa: E402
from moft.method.sampler import sample  # noqa: E402
from moft.io.synthetic import COLORS, DIRECTIONS, SHAPES, SPEED_RANGE, make_clip, object_weights  # noqa: E402

# training speeds are SPEED_RANGE (0.75-2.25 px/frame); a tracked centroid is allowed a margin
SPEED_BAND = (SPEED_RANGE[0] - 0.25, SPEED_RANGE[1] + 0.75)


def is_image_to_video(pipe) -> bool:
    """Whether the stock call wants an ``image`` (``WanImageToVideoPipeline``: moft-tiny-wan-i2v)."""
    return "image" in inspect.signature(pipe.__call__).parameters


def motion_row(frames: np.ndarray, color: str, direction: str) -> dict:
    """Bars 1 and 2 for one sample ``(F, H, W, 3)`` of a ``color`` object asked to move ``direction``."""
    path = track_centroid(frames, color=COLORS[color])  # (F, 2)
    fit = path_fit(path)
    present = bool(np.isfinite(path).all())
    speed_ok = present and SPEED_BAND[0] <= fit["speed"] <= SPEED_BAND[1]
    coherent = present and fit["r2"] >= 0.9 and fit["direction_consistency"] >= 0.8 and speed_ok
    requested = np.stack([np.zeros(2), np.asarray(DIRECTIONS[direction])])
    text_ok = present and direction_success(path, requested)
    return {"present": present, "coherent": bool(coherent), "text_ok": bool(text_ok), "r2": fit["r2"],
            "speed": fit["speed"], "consistency": fit["direction_consistency"], "angle_deg": fit["angle_deg"]}


def sample_quality(pipe, n: int, seed: int, guidance_scale: float, steps: int) -> dict:
    """Bars 1 and 2 on ``n`` samples of prompts 'a {colour} {shape} moving {direction}'
    (an image-to-video model: ``image_to_video_quality``)."""
    if is_image_to_video(pipe):
        return image_to_video_quality(pipe, n, seed, guidance_scale, steps)
    rng = np.random.default_rng(seed)
    names = list(DIRECTIONS)
    rows = []
    for i in range(n):
        color, shape, direction = rng.choice(list(COLORS)), rng.choice(SHAPES), names[i % len(names)]
        prompt = f"a {color} {shape} moving {direction}"
        frames = sample(pipe, prompt, seed=seed + i, steps=steps, guidance_scale=guidance_scale).frames
        rows.append({"prompt": prompt, "seed": seed + i, **motion_row(frames, color, direction)})
    return summarise_samples(rows)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    return float(-10 * np.log10(max(np.mean((np.asarray(a, np.float64) - b) ** 2), 1e-12)))


@torch.no_grad()
def image_to_video_quality(pipe, n: int, seed: int, guidance_scale: float, steps: int) -> dict:
    """Bars 1 and 2 of an image-to-video model, and whether its frame 0 keeps the image.

    Sample ``i`` animates frame 0 of a held-out single-object clip (``make_clip`` from ``seed + i``, moving in the
    8 directions in turn, its caption naming the motion) with that caption as the prompt, through the stock call
    (``image=``). Frame 0 is scored by its PSNR against the image, beside the VAE's own round trip of the image
    (what a frame 0 that is the image's latent decodes to: the most it can keep).
    """
    from PIL import Image  # noqa: PLC0415

    n_frames, height, width = default_video_size(pipe)
    # with temporal scale 1 the stock call rounds num_frames up to the next k + 1: ask for one less
    ask = n_frames - 1 if pipe.vae_scale_factor_temporal == 1 else n_frames
    names = list(DIRECTIONS)
    rows = []
    for i in range(n):
        clip = make_clip(np.random.default_rng(seed + i), kind="object", direction=names[i % len(names)],
                         describe_motion=True, n_frames=n_frames)
        image = (clip.frames[0] * 255).round().astype(np.uint8)  # (H, W, 3)
        frames = pipe(image=Image.fromarray(image), prompt=clip.caption, num_frames=ask, height=height, width=width,
                      num_inference_steps=steps, guidance_scale=guidance_scale, output_type="np",
                      generator=torch.Generator().manual_seed(seed + i)).frames[0]  # (F, H, W, 3) in [0, 1]
        x = torch.from_numpy(image).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W)
        x = x.to(pipe.vae.device, pipe.vae.dtype)
        round_trip = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample  # (1, 3, 1, H, W)
        round_trip = (round_trip[0, :, 0].permute(1, 2, 0).float().cpu().numpy().clip(-1, 1) + 1) / 2  # (H, W, 3)
        kept = object_kept(frames, COLORS[clip.colors[0]], max_step=2 * SPEED_RANGE[1] * min(height, width) / 32)
        rows.append({"prompt": clip.caption, "seed": seed + i,
                     "frame0_psnr": psnr(frames[0], image / 255), "vae_psnr": psnr(round_trip, image / 255),
                     "object_kept": kept["kept"], "max_step_px": kept["max_step_px"],
                     "area_ratio_min": kept["area_ratio_min"], "area_ratio_max": kept["area_ratio_max"],
                     **motion_row(frames, clip.colors[0], clip.directions[0])})
    return summarise_samples(rows) | {
        "object_kept_fraction": float(np.mean([r["object_kept"] for r in rows])),
        "median_frame0_psnr": float(np.median([r["frame0_psnr"] for r in rows])),
        "median_vae_round_trip_psnr": float(np.median([r["vae_psnr"] for r in rows])),
        "min_frame0_minus_vae_psnr": float(min(r["frame0_psnr"] - r["vae_psnr"] for r in rows))}


def summarise_samples(rows: list[dict]) -> dict:
    """The shares of bars 1 and 2 over per-sample rows (``motion_row``'s fields)."""
    n = len(rows)
    return {
        "samples": n,
        "coherent_fraction": float(np.mean([r["coherent"] for r in rows])),
        "present_fraction": float(np.mean([r["present"] for r in rows])),
        "text_direction_fraction": float(np.mean([r["text_ok"] for r in rows])),
        "median_r2": float(np.nanmedian([r["r2"] for r in rows])),
        "median_speed_px": float(np.nanmedian([r["speed"] for r in rows])),
        "rows": rows,
    }


def text_effect(pipe, seeds: int, seed: int, guidance_scale: float, steps: int) -> dict:
    """How much of the motion the direction word decides: sample 'a red disk moving {w}' for the
    four axis directions from the same seeds and split the variance of the net displacement
    (last minus first tracked centroid) into a between-word part and the rest (1.0: the word
    alone decides the motion; 0.0: the noise does, whatever the word)."""
    words = ["left", "right", "up", "down"]
    disp = np.full((len(words), seeds, 2), np.nan)  # (word, seed, xy)
    for w, word in enumerate(words):
        for k in range(seeds):
            frames = sample(pipe, f"a red disk moving {word}", seed=seed + k, steps=steps,
                            guidance_scale=guidance_scale).frames
            path = track_centroid(frames, color=COLORS["red"])
            if np.isfinite(path).all():
                disp[w, k] = path[-1] - path[0]
    ok = np.isfinite(disp).all(axis=(0, 2))  # seeds tracked under every word
    if not ok.any():
        return {"words": words, "seeds": 0, "mean_displacement_px": None, "variance_explained_by_word": None}
    d = disp[:, ok]
    total = float(((d - d.mean(axis=(0, 1))) ** 2).sum())
    between = float(d.shape[1] * ((d.mean(axis=1) - d.mean(axis=(0, 1))) ** 2).sum())
    return {"words": words, "seeds": int(ok.sum()),
            "mean_displacement_px": {w: [round(float(v), 3) for v in d[i].mean(0)] for i, w in enumerate(words)},
            "variance_explained_by_word": between / total if total > 0 else float("nan")}


OPPOSITE_WORD = {"left": "right", "right": "left", "up": "down", "down": "up"}


@torch.no_grad()
def word_loss_gain(pipe, clips_per_word: int, seed: int, timesteps=(950, 800, 600, 400),
                   swap: dict[str, str] | None = None) -> dict:
    """How much the denoiser reads the direction word: its v-prediction loss on held-out single-object
    clips captioned with the opposite direction, relative to the true caption, per timestep (same
    noise). Half the clips cross the frame (where the word alone says where the object starts).
    Reported plain and with the objects weighted x10 (they are a few percent of the pixels).

    Also the denoiser used as a classifier of the word (as in "Your Diffusion Model is Secretly a
    Zero-Shot Classifier", Li et al. 2023): each clip captioned with each of the words, the word of
    least objects-weighted loss picked. ``word_accuracy`` is the fraction picked right (chance 1/len(words))
    and ``confusion[true][picked]`` counts the picks; ``gain_by_word[true][word]`` is the mean objects-
    weighted loss rise under each word (less noisy than the picks). Both show a model that reads one
    axis only (e.g. "left" and "up" alike) where the opposite-word gain alone cannot.
    """
    from moft.models.adapters import call_denoiser

    swap = swap or OPPOSITE_WORD
    rng = np.random.default_rng(seed)
    words = list(swap)
    n_frames = default_video_size(pipe)[0]  # the model's clip length (moft-tiny 8, moft-tiny-wan 9)
    clips = [make_clip(rng, kind="object", direction=words[i % len(words)], describe_motion=True, cross_prob=0.5,
                       n_frames=n_frames) for i in range(clips_per_word * len(words))]
    z = torch.cat([encode_video(pipe, (c.frames * 255).round().astype(np.uint8)) for c in clips])  # (B, F, C, h, w)
    weight = object_weights(np.stack([c.masks for c in clips]), z.shape[-2:], 10.0)  # (B, F, h, w)
    weight = torch.from_numpy(weight)[:, :, None]  # (B, F, 1, h, w), as z
    stem = [c.caption.rsplit(" ", 1)[0] for c in clips]
    truth = [words.index(c.caption.rsplit(" ", 1)[1]) for c in clips]  # (B,) each clip's own word
    opposite = [words.index(swap[words[i]]) for i in truth]  # (B,)
    # each clip under each word's caption: the true and the opposite caption are among them
    emb = [encode_prompt(pipe, [f"{s} {w}" for s in stem]) for w in words]
    rows = torch.arange(len(clips))
    gen = torch.Generator().manual_seed(seed)
    out = {"clips": len(clips), "words": words, "timesteps": {}}
    for t in timesteps:
        noise = torch.randn(z.shape, generator=gen)  # (B, F, C, h, w)
        tt = torch.full((len(clips),), t)
        # the scheduler broadcasts over trailing axes, so the (B, F, C, h, w) layout can stay; the training target:
        # v-prediction (moft-tiny) or the rectified-flow velocity noise - z (moft-tiny-wan)
        noisy = noise_latents(pipe, z, noise, t)
        target = noise - z if is_flow(pipe.scheduler) else pipe.scheduler.get_velocity(z, noise, tt)
        plain, weighted = [], []  # per word: (B,)
        for e in emb:
            err = (call_denoiser(denoiser(pipe), noisy, t, {"encoder_hidden_states": e}) - target) ** 2
            plain.append(err.mean(dim=(1, 2, 3, 4)))
            weighted.append((weight * err).mean(dim=(1, 2, 3, 4)) / weight.mean())
        plain, weighted = torch.stack(plain, dim=1), torch.stack(weighted, dim=1)  # (B, W)
        picked = weighted.argmin(dim=1).tolist()
        by_word = {}  # true word -> caption word -> mean objects-weighted loss rise
        for i, w in enumerate(words):
            own = weighted[torch.tensor(truth) == i]  # (clips of w, W)
            by_word[w] = {v: round(float(own[:, j].mean() / own[:, i].mean() - 1), 4) for j, v in enumerate(words)}
        weakest = min(((w, v) for w in words for v in words if v != w), key=lambda wv: by_word[wv[0]][wv[1]])
        out["timesteps"][int(t)] = {
            "loss_true": float(plain[rows, truth].mean()),
            "gain": float(plain[rows, opposite].mean() / plain[rows, truth].mean() - 1),
            "gain_object_weighted": float(weighted[rows, opposite].mean() / weighted[rows, truth].mean() - 1),
            "word_accuracy": sum(p == w for p, w in zip(picked, truth)) / len(clips),
            "confusion": {w: {v: sum(p == b for p, x in zip(picked, truth) if x == a) for b, v in enumerate(words)}
                          for a, w in enumerate(words)},
            "gain_by_word": by_word,
            "weakest_pair": {"true": weakest[0], "caption": weakest[1], "gain": by_word[weakest[0]][weakest[1]]}}
    return out


@torch.no_grad()
def word_separation(pipe) -> dict:
    """How far apart the text encoder puts prompts that differ in one word, per kind of word.

    For each group (4 direction words, 4 colours, the shapes) the distance between two prompts'
    encoder outputs (all positions, relative to their mean norm), for the closest pair of the group:
    near 0 means the encoder maps those words alike, so no denoiser can tell them apart.
    """
    groups = {"direction": ("a red disk moving {}", ("left", "right", "up", "down")),
              "colour": ("a {} disk moving left", ("red", "green", "blue", "yellow")),
              "shape": ("a red {} moving left", SHAPES)}
    out = {}
    for name, (template, words) in groups.items():
        e = encode_prompt(pipe, [template.format(w) for w in words]).float().flatten(1)  # (P, L*D)
        dist = torch.cdist(e, e) / e.norm(dim=1).mean()  # (P, P)
        dist.fill_diagonal_(float("inf"))
        i, j = divmod(int(dist.argmin()), len(words))
        out[name] = {"closest": float(dist[i, j]), "pair": f"{words[i]}/{words[j]}"}
        if name == "direction":  # e: left, right, up, down
            # if the left-right and up-down contrasts are not orthogonal, one diagonal contrast is larger
            # and a denoiser learning to read the word picks it up first ("left" and "up" alike)
            lr, ud = e[0] - e[1], e[2] - e[3]  # (L*D,)
            scale = e.norm(dim=1).mean()
            out[name] |= {"axes_cosine": float(torch.nn.functional.cosine_similarity(lr, ud, dim=0)),
                          "diagonal_contrasts": {"left+up vs right+down": float((lr + ud).norm() / scale),
                                                 "left+down vs right+up": float((lr - ud).norm() / scale)}}
    return out


@torch.no_grad()
def moft_decoding(pipe, per_direction: int, seed: int, timestep: int, steps: int, figure: Path | None,
                  model: str | None = None) -> dict:
    """Bar 3: decode 8 motion directions from frame-0 features, with and without CR."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = list(DIRECTIONS)
    index, t = nearest_step(pipe, steps, timestep, ascending=True)
    s = vae_scale(pipe)
    ch = default_channels(model)
    feats = {"raw": [], "moft_all_channels": [], "moft_motion_channels": []}
    labels = []
    n_frames = default_video_size(pipe)[0]  # the model's clip length (moft-tiny 8, moft-tiny-wan 9)
    for k, name in enumerate(names):
        for j in range(per_direction):
            # seed + 1000 k + j for the first 1,000 per direction (the seeds earlier reports used); past them
            # a seed per (seed, k, j), where seed + 1000 k + j would repeat the next direction's clips
            rng = np.random.default_rng(seed + 1000 * k + j if j < 1000 else [seed, k, j])
            kind = "pan" if j % 2 else "object"
            clip = make_clip(rng, kind=kind, direction=name, speed=float(rng.uniform(1.0, 2.0)), n_frames=n_frames)
            frames = (clip.frames * 255).round().astype(np.uint8)  # (F, H, W, 3)
            # an image-to-video model inverts the clip as the animation of its own frame 0
            ref = reference_features(pipe, frames, timestep=timestep, num_steps=steps,
                                     image_cond=clip_conditioning(pipe, frames, *frames.shape[1:3]))
            x = resize(ref.features.float(), tuple(ref.latents.shape[-2:]))[0]  # (F, C, h, w)
            # the object's grid cell at frame 0 (pans: the object's too, it moves with the scene)
            cx, cy = clip.tracks[0, 0]
            r, c = int(np.clip((cy + 0.5) / s, 0, x.shape[-2] - 1)), int(np.clip((cx + 0.5) / s, 0, x.shape[-1] - 1))
            # clones: a view would keep each video's whole feature map alive (GBs over thousands of videos)
            raw = x[0, :, r, c].clone()  # (C,)
            cr = remove_content_correlation(x[None])[0, 0, :, r, c].clone()  # (C,)
            feats["raw"].append(raw.numpy())
            feats["moft_all_channels"].append(cr.numpy())
            if ch is not None and ch.num_channels == cr.shape[0]:
                feats["moft_motion_channels"].append(cr[ch.indices].numpy())
            labels.append(k)
    y = np.asarray(labels)
    out = {"videos": len(y), "directions": names, "timestep": t, "inversion_step": index, "learning_curve": {}}
    # the classifier's accuracy as it gets more labelled videos (the first n per direction)
    sizes = sorted({n for n in (8, 16, 32, 64, 128, 256, 512, per_direction) if 5 <= n <= per_direction})
    for key, rows in feats.items():
        if not rows:
            continue
        x_all = np.stack(rows)
        curve = {}
        for n in sizes:
            keep = np.arange(len(y)) % per_direction < n  # videos are ordered direction by direction
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
            folds = StratifiedKFold(5, shuffle=True, random_state=0)
            scores = cross_val_score(clf, x_all[keep], y[keep], cv=folds)  # (5,) one accuracy per held-out fold
            curve[int(keep.sum())] = float(scores.mean())
        out["learning_curve"][key] = curve
        out[f"accuracy_{key}"] = curve[len(y)]
        out[f"fold_accuracies_{key}"] = [float(a) for a in scores]  # at all the videos: how far the mean can move
    if figure is not None:
        from moft.front.figures import pca_direction_figure

        for key in ("raw", "moft_all_channels"):
            data = np.stack(feats[key])
            pca_direction_figure({n: data[y == k] for k, n in enumerate(names)},
                                 figure.with_name(f"{figure.stem}_{key}{figure.suffix}"),
                                 title=f"PCA of frame-0 {key.replace('_', ' ')} by motion direction")
    return out


def markdown(report: dict) -> str:
    """The bars as a Markdown table (copied into the README by scripts/results_tables.py)."""
    q, d = report["sample_quality"], report.get("moft_decoding")
    n = q["samples"]

    def frac(key):
        return f"{100 * q[key]:.0f}% ({round(q[key] * n)}/{n})"

    lines = [f"Measured by `python scripts/model_quality.py` on {report['model']} ({n} unguided samples, CFG "
             f"{report['guidance_scale']:g}, {report['steps']} sampling steps"
             + (f"; {d['videos']} held-out labelled videos, inverted (DDIM, or Euler for a flow model) to "
                f"t = {d['timestep']:.0f}" if d else "") + ").",
             "", "| bar | target | measured |", "|---|---|---|",
             f"| samples with one trackable object | – | {frac('present_fraction')} |",
             f"| coherent samples (straight path R² ≥ 0.9, consistent steps, speed in range) | ≥ 90% | "
             f"{frac('coherent_fraction')}; median R² {q['median_r2']:.2f}, median speed {q['median_speed_px']:.2f} px/frame |",
             f"| prompt's direction followed (within 22.5°) | ≥ 80% | {frac('text_direction_fraction')} (chance 12.5%) |"]
    if "median_frame0_psnr" in q:  # an image-to-video model
        lines.append(f"| frame 0 keeps the image: median PSNR against it (the VAE's own round trip) | ≈ round trip | "
                     f"{q['median_frame0_psnr']:.1f} dB ({q['median_vae_round_trip_psnr']:.1f} dB); worst sample "
                     f"{q['min_frame0_minus_vae_psnr']:+.1f} dB from its round trip |")
        if "object_kept_fraction" in q:
            lines.append("| the object keeps its place, colour and size through the clip (in every frame; no step over "
                         "twice the fastest training speed; area within 0.5–2x frame 0's) | ≥ 90% | "
                         f"{frac('object_kept_fraction')} |")
    if d:
        folds = d.get("fold_accuracies_moft_all_channels")
        spread = (f" (folds {100 * min(folds):.1f}–{100 * max(folds):.1f}%, standard error "
                  f"{100 * np.std(folds, ddof=1) / np.sqrt(len(folds)):.1f} points)" if folds else "")
        lines += [f"| 8-direction decoding from frame-0 MOFT (CR, all channels), 5-fold logistic regression | ≥ 95% | "
                  f"{100 * d['accuracy_moft_all_channels']:.1f}%{spread} |",
                  f"| the same from raw features (no CR) | clearly worse | {100 * d['accuracy_raw']:.1f}% |"]
        if d.get("learning_curve"):
            lines.append("| MOFT decoding as the labelled videos grow (videos: accuracy) | – | " + ", ".join(
                f"{n}: {100 * a:.1f}%" for n, a in d["learning_curve"]["moft_all_channels"].items()) + " |")
        if "accuracy_moft_motion_channels" in d:
            lines.append(f"| the same from the shipped motion channels only | – | "
                         f"{100 * d['accuracy_moft_motion_channels']:.1f}% |")
    te = report.get("text_effect")
    if te and "variance_explained_by_word" in te:
        share = te["variance_explained_by_word"]
        lines.append(f"| share of motion variance decided by the direction word ({len(te['words'])} words × "
                     f"{te['seeds']} seeds, same noise) | – | "
                     + (f"{100 * share:.0f}% |" if share is not None else "no seed tracked under every word |"))
    if te:
        sep = te.get("text_encoder_word_separation")
        if sep:
            lines.append("| text-encoder distance between prompts differing in one word (closest pair, relative) | – | "
                         + ", ".join(f"{k} {v['closest']:.2f} ({v['pair']})" for k, v in sep.items())
                         + (f"; cosine of the left−right and up−down contrasts {sep['direction']['axes_cosine']:+.2f}"
                            if "axes_cosine" in sep["direction"] else "") + " |")
        gain = te.get("direction_word_loss_gain")
        if gain:
            lines.append(f"| denoiser loss rise when the caption names the opposite direction ({gain['clips']} held-out "
                         "clips; t: plain / objects x10) | – | " + ", ".join(
                             f"{t}: {100 * g['gain']:+.1f}% / {100 * g['gain_object_weighted']:+.1f}%"
                             for t, g in gain["timesteps"].items()) + " |")
            if "word_accuracy" in next(iter(gain["timesteps"].values())):
                lines.append(f"| the denoiser as a classifier of the direction word (least loss of {len(gain['words'])} "
                             f"captions; chance {100 / len(gain['words']):.0f}%) | – | " + ", ".join(
                                 f"t {t}: {100 * g['word_accuracy']:.0f}%" for t, g in gain["timesteps"].items()) + " |")
                lines.append("| the two words it tells apart least (objects-weighted loss rise under the wrong one; "
                             "≤ 0: read alike) | – | " + ", ".join(
                                 f"t {t}: {w['true']}→{w['caption']} {100 * w['gain']:+.1f}%"
                                 for t, g in gain["timesteps"].items() for w in [g["weakest_pair"]]) + " |")
    return "\n".join(lines) + "\n"


def main():
    from moft.io.jsonio import write_report

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--per-direction", type=int, default=128, help="held-out labelled videos per direction")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--timestep", type=int, default=200)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--figure", type=Path, default=None)
    p.add_argument("--skip-decoding", action="store_true")
    p.add_argument("--text-seeds", type=int, default=8, help="seeds per direction word for the text-effect check")
    p.add_argument("--only", choices=("sample_quality", "moft_decoding", "text_effect", "word_loss"), default=None,
                   help="run only this part (word_loss: the denoiser's direction-word loss probe, no sampling, "
                        "seconds) and merge it into --out if that report exists, else only print it")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from moft.models.pipeline import default_guidance_scale

    pipe = load_pipeline(args.model)
    cfg = args.guidance_scale or default_guidance_scale(pipe)
    t0 = time.time()

    def save(report):
        if args.out and "sample_quality" in report:
            write_report(args.out, report, markdown(report))

    if args.only:
        if args.out is not None and not args.out.exists():
            p.error(f"--only merges into an existing report and {args.out} does not exist; rerun it whole")
        report = json.loads(args.out.read_text()) if args.out else {
            "model": args.model or "moft-tiny", "guidance_scale": cfg, "steps": args.steps}
        if (report["model"], report["guidance_scale"], report["steps"]) != (args.model or "moft-tiny", cfg, args.steps):
            p.error(f"{args.out} was measured with other settings; rerun it whole")
        report.pop("seconds", None)  # a whole run's time no longer describes a report with a part redone
    else:
        report = {"model": args.model or "moft-tiny", "guidance_scale": cfg, "steps": args.steps}
    if args.only in (None, "sample_quality"):
        report["sample_quality"] = sample_quality(pipe, args.samples, args.seed, cfg, args.steps)
        save(report)  # each part as it finishes: the later parts take long
    if args.only == "moft_decoding" or (args.only is None and not args.skip_decoding):
        report["moft_decoding"] = moft_decoding(pipe, args.per_direction, args.seed, args.timestep, args.steps,
                                                args.figure, args.model)
        save(report)
    if args.only in (None, "text_effect") and args.text_seeds > 0:
        report["text_effect"] = text_effect(pipe, args.text_seeds, args.seed, cfg, args.steps)
    if args.only in (None, "text_effect", "word_loss") and args.text_seeds > 0:
        report.setdefault("text_effect", {})["text_encoder_word_separation"] = word_separation(pipe)
        report["text_effect"]["direction_word_loss_gain"] = word_loss_gain(pipe, 8, args.seed)
    report["seconds" if not args.only else f"seconds_{args.only}"] = time.time() - t0
    summary = {k: v for k, v in report.get("sample_quality", {}).items() if k != "rows"}
    print(json.dumps({"sample_quality": summary, "moft_decoding": report.get("moft_decoding"),
                      "text_effect": report.get("text_effect")}, indent=2))
    save(report)


if __name__ == "__main__":
    main()
