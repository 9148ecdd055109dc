"""The repo's scripts: the pure parts that turn measured reports into README tables."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quality_report():
    rows = [{"coherent": i < 3, "text_ok": i < 1} for i in range(4)]
    return {"model": "m", "guidance_scale": 4.0, "steps": 25,
            "sample_quality": {"samples": 4, "coherent_fraction": 0.75, "present_fraction": 1.0,
                               "text_direction_fraction": 0.25, "median_r2": 0.9, "median_speed_px": 1.5,
                               "rows": rows},
            "moft_decoding": {"videos": 16, "timestep": 199, "accuracy_raw": 0.25,
                              "accuracy_moft_all_channels": 0.5, "accuracy_moft_motion_channels": 0.375,
                              "learning_curve": {"moft_all_channels": {"8": 0.25, "16": 0.5}}}}


def test_quality_markdown_reports_every_bar_with_counts(quality_report):
    md = _load("model_quality").markdown(quality_report)
    assert "75% (3/4)" in md and "25% (1/4)" in md and "100% (4/4)" in md
    assert "| 50.0% |" in md and "| 25.0% |" in md and "| 37.5% |" in md  # a bar's margin shows
    assert "t = 199" in md
    assert "8: 25.0%, 16: 50.0%" in md


def test_quality_markdown_without_decoding(quality_report):
    report = {k: v for k, v in quality_report.items() if k != "moft_decoding"}
    md = _load("model_quality").markdown(report)
    assert "decoding" not in md and "75% (3/4)" in md


def test_results_tables_fill_replaces_only_the_block(tmp_path, monkeypatch):
    tables = _load("results_tables")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "a.md").write_text("| x |\n")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    text = "head\n<!-- results -->\nold\n<!-- /results -->\ntail\n"
    out, n = tables.fill(text, "results", ["a", "missing"])
    assert n == 1
    assert out == "head\n<!-- results -->\n<!-- from docs/results/a.md -->\n| x |\n<!-- /results -->\ntail\n"
    assert tables.fill(out, "results", ["a"])[0] == out  # idempotent


def test_results_tables_cover_their_blocks():
    tables = _load("results_tables")
    for block, (name, _) in tables.BLOCKS.items():
        text = (SCRIPTS.parent / name).read_text()
        assert f"<!-- {block} -->" in text and f"<!-- /{block} -->" in text, (name, block)


def test_train_mix_parses_kind_weights():
    import argparse

    train = _load("train_shipped_model")
    assert train._mix("object=0.6, pan=0.4") == {"object": 0.6, "pan": 0.4}
    with pytest.raises(argparse.ArgumentTypeError, match="kind=weight"):
        train._mix("object")
    json.dumps(train._mix("still=1"))  # recorded in the checkpoint's phases as JSON


@pytest.mark.parametrize("decided_by_word, expected", [(True, 1.0), (False, 0.0)])
def test_text_effect_splits_motion_variance_between_word_and_noise(monkeypatch, decided_by_word, expected):
    import types

    import numpy as np

    mq = _load("model_quality")
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

    def fake_sample(pipe, prompt, seed, **kw):
        word = prompt.rsplit(" ", 1)[1]
        v = np.array(step[word] if decided_by_word else step[list(step)[seed % 4]], dtype=float)
        return types.SimpleNamespace(frames=np.arange(8)[:, None] * v)  # the "video" is its own path

    monkeypatch.setattr(mq, "sample", fake_sample)
    monkeypatch.setattr(mq, "track_centroid", lambda frames, color: frames)
    out = mq.text_effect(None, seeds=4, seed=0, guidance_scale=4.0, steps=2)
    assert out["seeds"] == 4
    assert out["variance_explained_by_word"] == pytest.approx(expected)


def test_text_effect_without_a_tracked_seed_reports_none(monkeypatch):
    import types

    import numpy as np

    mq = _load("model_quality")
    monkeypatch.setattr(mq, "sample", lambda pipe, prompt, seed, **kw: types.SimpleNamespace(frames=None))
    monkeypatch.setattr(mq, "track_centroid", lambda frames, color: np.full((8, 2), np.nan))
    out = mq.text_effect(None, seeds=2, seed=0, guidance_scale=4.0, steps=2)
    assert out["seeds"] == 0 and out["variance_explained_by_word"] is None
    report = {"model": "m", "guidance_scale": 4.0, "steps": 2, "text_effect": out,
              "sample_quality": {"samples": 1, "coherent_fraction": 0.0, "present_fraction": 0.0,
                                 "text_direction_fraction": 0.0, "median_r2": 0.0, "median_speed_px": 0.0}}
    assert "no seed tracked under every word" in mq.markdown(report)


def test_word_separation_is_zero_for_words_the_encoder_maps_alike(animatediff):
    import torch

    mq = _load("model_quality")
    sep = mq.word_separation(animatediff)
    assert set(sep) == {"direction", "colour", "shape"} and all(v["closest"] > 0 for v in sep.values())
    emb = animatediff.text_encoder.get_input_embeddings().weight
    ids = [animatediff.tokenizer.convert_tokens_to_ids(w) for w in ("left", "right", "up", "down")]
    saved = emb[ids].clone()
    try:
        with torch.no_grad():
            emb[ids] = emb[ids[0]].clone()  # every direction word now the same token
        assert mq.word_separation(animatediff)["direction"]["closest"] == pytest.approx(0.0, abs=1e-6)
    finally:
        with torch.no_grad():
            emb[ids] = saved


def test_quality_markdown_reports_the_text_diagnostics(quality_report):
    report = quality_report | {"text_effect": {"words": ["left", "right"], "seeds": 3, "variance_explained_by_word": 0.5,
                                               "text_encoder_word_separation": {"direction": {"closest": 0.05, "pair": "left/right"},
                                                                                "colour": {"closest": 0.4, "pair": "red/blue"}}}}
    md = _load("model_quality").markdown(report)
    assert "| 50% |" in md and "direction 0.05 (left/right), colour 0.40 (red/blue)" in md


def test_target_specificity_tells_direction_coded_targets_from_direction_blind_ones():
    import torch

    spec = _load("target_specificity").specificity
    rng = torch.Generator().manual_seed(0)
    codes = torch.randn(8, 1, 4, 3, generator=rng)  # one (F, d) curve per direction
    coded = codes + 0.1 * torch.randn(8, 5, 4, 3, generator=rng)  # (D, S, F, d): 5 noisy scenes each
    out = spec(coded)
    assert out["nearest_centroid_accuracy"] == 1.0
    assert out["cos_same_direction"] > 0.9 > out["cos_other_directions"]
    blind = codes[:1].expand(8, 5, 4, 3) + 0.1 * torch.randn(8, 5, 4, 3, generator=rng)  # every direction alike
    out = spec(blind)
    assert out["nearest_centroid_accuracy"] < 0.5
    assert abs(out["cos_same_direction"] - out["cos_other_directions"]) < 0.05


def test_target_specificity_runs_on_a_tiny_model(animatediff):
    mod = _load("target_specificity")
    rows = mod.measure(animatediff, {"all": None, "two": [0, 1]}, [200], scenes=2, speed=1.6, seed=0)
    assert [(r["clips"], r["channels"]) for r in rows] == [("pan", "all"), ("pan", "two"), ("object", "all"),
                                                           ("object", "two")]
    assert rows[0]["num_channels"] == animatediff.unet.config.block_out_channels[1] and rows[1]["num_channels"] == 2
    assert all(-1 <= r["cos_opposite"] <= 1 and 0 <= r["nearest_centroid_accuracy"] <= 1 for r in rows)
    norms = [{"step": 3, "timestep": 879, "samples": 0, "generated_norm": None, "target_norm": 3.0, "ratio": None}]
    text = mod.markdown({"model": "m", "scenes": 2, "rows": rows, "norm_prompt": "p", "norms": norms})
    assert "| object | 200 | two (2) |" in text and "| 3 | 879 | 0 | – | 3.00 | – |" in text


def test_path_box_covers_the_path_on_the_latent_grid():
    import numpy as np

    box = _load("target_specificity").path_box(np.array([[4.0, 4.0], [12.0, 6.0]]), (16, 16), 2, pad=2.0)
    rows, cols = box.nonzero(as_tuple=True)
    assert (int(cols.min()), int(cols.max()), int(rows.min()), int(rows.max())) == (1, 7, 1, 4)


def test_norm_ratio_compares_generated_and_target_curves(animatediff, monkeypatch):
    import numpy as np

    import moft.eval.objects as objects

    # a random model draws no red disk; place one by hand so the region exists
    monkeypatch.setattr(objects, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.3, 0.3, 0.7, 0.7]))
    rows = _load("target_specificity").norm_ratio(animatediff, prompt="a red disk", seeds=[0], guided_steps=[1],
                                                  steps=3, guidance_scale=4.0, scenes=1, speed=1.6, seed=0)
    assert len(rows) == 1 and rows[0]["samples"] == 1
    assert rows[0]["ratio"] == rows[0]["generated_norm"] / rows[0]["target_norm"] > 0


def test_object_weighted_mse_is_plain_mse_at_weight_zero_and_favours_the_objects():
    import torch

    from moft.io.synthetic import object_weights

    train = _load("train_shipped_model")
    pred, target = torch.zeros(2, 4, 8, 4, 4), torch.zeros(2, 4, 8, 4, 4)
    cover = np.zeros((2, 8, 8, 8), np.float32)
    cover[..., :2, :2] = 1.0  # the object covers the top-left latent cell
    pred[..., 0, 0] = 1.0  # an error only on the object
    plain = torch.nn.functional.mse_loss(pred, target)
    weighted = lambda p, w: train.object_weighted_mse(p, target, torch.from_numpy(object_weights(cover, (4, 4), w)))
    assert weighted(pred, 0.0) == pytest.approx(plain.item())
    on_object = weighted(pred, 10.0)
    pred2 = torch.zeros_like(pred)
    pred2[..., 3, 3] = 1.0  # the same error on the background
    off_object = weighted(pred2, 10.0)
    assert on_object > plain > off_object


@pytest.mark.parametrize("organism", ["animatediff", "moft-tiny-wan"])
def test_word_loss_gain_is_zero_when_the_caption_is_unchanged_and_not_otherwise(organism):
    """On a v-prediction U-Net and on the shipped flow DiT (its velocity target, its 9-frame clips)."""
    from moft.models.loading import load_pipeline
    from moft.models.tiny import build_tiny_animatediff

    mq = _load("model_quality")
    pipe = build_tiny_animatediff(seed=0) if organism == "animatediff" else load_pipeline(organism)
    same = mq.word_loss_gain(pipe, 1, seed=0, timesteps=(900,), swap={w: w for w in mq.OPPOSITE_WORD})
    assert same["clips"] == 4 and same["timesteps"][900]["gain"] == 0.0
    swapped = mq.word_loss_gain(pipe, 1, seed=0, timesteps=(900,))
    assert swapped["timesteps"][900]["gain"] != 0.0  # a random text encoder tells the words apart
    probe = swapped["timesteps"][900]
    confusion = probe["confusion"]
    assert all(sum(row.values()) == 1 for row in confusion.values())  # one clip per word, one pick each
    assert probe["word_accuracy"] == sum(confusion[w][w] for w in confusion) / 4


def test_control_defaults_take_the_best_setting_whole(tmp_path):
    suite = {"guidance": {"steps": [3, 12], "iterations": 2, "step_size": 0.5, "loss": "region_mse"}, "target": "curves",
             "settings": [{"name": "official"}, {"name": "drag", "target": "drag", "loss": "per_position", "iterations": 4},
                          {"name": "drag big", "target": "drag", "loss": "per_position", "step_size": 2.0}]}
    table = [{"setting": "unguided", "direction_success": 0.1, "toward_px": 0.0},
             {"setting": "official", "direction_success": 0.1, "toward_px": 0.2},
             {"setting": "drag", "direction_success": 0.8, "toward_px": 4.0},
             {"setting": "drag big", "direction_success": 0.8, "toward_px": 3.0}]
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    report.write_text(json.dumps({"suite": suite, "table": table}))
    defaults.write_text(json.dumps({"prompt": "p"}))
    _load("ship_model").choose_control_defaults(report, defaults)
    written = json.loads(defaults.read_text())
    assert written["prompt"] == "p" and written["target"] == "drag"
    assert written["guidance"]["loss"] == "per_position" and written["guidance"]["iterations"] == 4
    assert written["guidance"]["step_size"] == 0.5 and written["guidance"]["steps"] == [3, 12]
    assert written["guidance_chosen_by"]["setting"] == "drag"
    from moft.front.control import default_guidance

    (tmp_path / "model_index.json").write_text("{}")
    assert default_guidance(tmp_path).iterations == 4  # the folder's moft.json loads as a GuidanceConfig
    other = tmp_path / "hub-model"
    other.mkdir()
    _load("ship_model").choose_control_defaults(report, other / "moft.json")  # a folder without moft.json
    assert json.loads((other / "moft.json").read_text())["target"] == "drag"


def test_control_defaults_rank_by_direction_then_share_within_the_ssim_and_glitch_limits(tmp_path):
    suite = {"guidance": {"steps": [3, 12], "iterations": 4, "step_size": 1.0, "loss": "per_position"}, "target": "drag",
             "settings": [{"name": "strong"}, {"name": "far", "distance": "cosine", "step_size": 40.0},
                          {"name": "near", "optimizer": "adam", "step_size": 0.1}, {"name": "blotchy", "step_size": 3.0}]}
    row = lambda name, d, share, ssim, glitch: {"setting": name, "direction_success": d, "displacement_share": share,  # noqa: E731
                                                "toward_px": 1.0, "ssim_outside": ssim, "glitch": glitch}
    table = [row("strong", 0.9, 0.9, 0.85, 0.0),  # damages the background: out
             row("far", 0.7, 0.6, 0.92, 0.0), row("near", 0.7, 0.4, 0.95, 0.0),
             row("blotchy", 0.95, 0.9, 0.93, 0.10)]  # glitches: out
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    report.write_text(json.dumps({"suite": suite, "table": table}))
    _load("ship_model").choose_control_defaults(report, defaults)
    written = json.loads(defaults.read_text())
    assert written["guidance_chosen_by"]["setting"] == "far" and written["guidance"]["distance"] == "cosine"
    assert written["guidance_chosen_by"]["displacement_share"] == 0.6


def test_control_defaults_must_steer_and_record_the_channel_fraction(tmp_path):
    """A row that keeps the background because it does nothing is not a default; when no steering row keeps the
    limits, the best steering row is taken and says so; a row over all channels asks for channels at fraction 1."""
    suite = {"guidance": {"steps": [3, 12], "iterations": 4, "step_size": 1.0, "loss": "per_position"}, "target": "drag",
             "settings": [{"name": "still", "target": "curves"}, {"name": "copies", "step_size": 4.0},
                          {"name": "all channels", "features": "cr", "step_size": 2.0}]}
    row = lambda name, d, ssim, split: {"setting": name, "direction_success": d, "displacement_share": d,  # noqa: E731
                                        "toward_px": 1.0, "ssim_outside": ssim, "glitch": 0.0, "split": split}
    table = [row("still", 0.0, 1.0, 0.0), row("copies", 0.9, 0.95, 0.7), row("all channels", 0.8, 0.8, 0.2)]
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    report.write_text(json.dumps({"suite": suite, "table": table}))
    chosen = _load("ship_model").choose_control_defaults(report, defaults)["guidance_chosen_by"]
    assert chosen["setting"] == "copies" and not chosen["constraints_met"] and chosen["channel_fraction"] is None
    table[1]["split"] = 0.5  # still over the ceiling; now "all channels" leads on nothing but is within the rest
    table[2]["ssim_outside"] = 0.93
    report.write_text(json.dumps({"suite": suite, "table": table}))
    chosen = _load("ship_model").choose_control_defaults(report, defaults)["guidance_chosen_by"]
    assert chosen["setting"] == "all channels" and chosen["constraints_met"] and chosen["channel_fraction"] == 1.0


def test_the_transfer_choice_takes_the_highest_motion_fidelity_and_survives_a_new_control_choice(tmp_path):
    """A motion-transfer tuning report: the guided row (one that names its transfer) of the highest Motion Fidelity wins,
    rows within 0.01 of it a tie broken by the lower ObjMC; written as ``guidance.transfer`` with its figures; a later
    ``--guidance-from`` (control defaults from another report) keeps it; and a reference run of the folder resolves
    to it."""
    from moft.method.settings import resolve_settings
    from moft.models.record import ModelRecord

    suite = {"settings": [{"name": "paper", "transfer": "target", "steps": [3, 12]}, {"name": "dragged", "transfer": "drag"},
                          {"name": "plain"}]}
    row = lambda name, fidelity, objmc: {"setting": name, "scored": 12, "motion_fidelity_lk": fidelity,  # noqa: E731
                                         "objmc_lk_px": objmc, "camera_error_flow_px": 1.0, "ssim_outside": 0.9,
                                         "glitch": 0.0}
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    for table, want in (([row("unguided", 0.9, 0.1), row("paper", 0.47, 4.8), row("dragged", 0.78, 2.1),
                          row("plain", 0.95, 0.5)], "drag"),  # unguided and a row naming no transfer: not candidates
                        ([row("paper", 0.785, 1.0), row("dragged", 0.78, 2.1)], "target"),  # a tie: the lower ObjMC
                        ([row("paper", 0.80, 3.0), row("dragged", 0.78, 2.1)], "target")):
        report.write_text(json.dumps({"suite": suite, "table": table}))
        written = _load("ship_model").choose_transfer(report, defaults)
        assert written["guidance"]["transfer"] == want, table
    assert written["guidance_chosen_by"]["transfer"]["setting"] == "paper"
    control = {"guidance": {"steps": [3, 12], "iterations": 4}, "target": "drag", "settings": [{"name": "cut-drag",
               "method": "cut-drag", "start": "proxy", "release": 20}]}
    report.write_text(json.dumps({"suite": control, "table": [{"setting": "cut-drag", "direction_success": 1.0,
                                  "displacement_share": 0.9, "toward_px": 1.0, "ssim_outside": 0.99, "glitch": 0.0,
                                  "split": 0.0, "seconds": 2.0}]}))
    defaults.write_text(json.dumps(dict(json.loads(defaults.read_text()), guidance={"transfer": "drag"})))
    written = _load("ship_model").choose_control_defaults(report, defaults)
    assert written["guidance"]["transfer"] == "drag" and written["guidance"]["method"] == "cut-drag"
    assert written["guidance_chosen_by"]["transfer"]["setting"] == "paper"  # the record of the transfer choice kept
    record = ModelRecord.from_dict(written)
    assert resolve_settings(record, reference=True).guidance.method == "cut-drag"  # a clip is dragged
    written["guidance"]["transfer"] = "target"
    assert resolve_settings(ModelRecord.from_dict(written), reference=True).guidance.method == "gradient"


def test_control_defaults_take_the_cheapest_setting_that_meets_every_goal(tmp_path):
    """Issue 26: among rows meeting every goal the fewest seconds win, even over a larger share; a row missing one
    goal (here the split rate) is not a candidate however cheap; with no row on goal, the old rank decides."""
    suite = {"guidance": {"steps": [3, 12], "iterations": 4, "step_size": 1.0, "loss": "per_position"}, "target": "drag",
             "settings": [{"name": "gradient, keep", "keep": "latents"},
                          {"name": "cut-drag", "method": "cut-drag", "start": "proxy", "release": 20, "keep": "latents"},
                          {"name": "cheap copy", "method": "cut-drag", "start": "proxy"}]}
    row = lambda name, share, split, seconds: {"setting": name, "direction_success": 1.0, "displacement_share": share,  # noqa: E731
                                               "toward_px": 1.0, "ssim_outside": 0.99, "glitch": 0.0, "split": split,
                                               "seconds": seconds}
    table = [row("gradient, keep", 0.93, 0.0, 39.5), row("cut-drag", 0.85, 0.0, 8.5), row("cheap copy", 0.9, 0.25, 2.0)]
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    report.write_text(json.dumps({"suite": suite, "table": table}))
    written = _load("ship_model").choose_control_defaults(report, defaults)
    assert written["guidance_chosen_by"]["setting"] == "cut-drag" and written["guidance_chosen_by"]["goals_met"]
    assert written["guidance"]["method"] == "cut-drag" and written["guidance"]["release"] == 20
    suite["settings"].append({"name": "cut-drag, no keep", "method": "cut-drag", "start": "proxy", "release": 20})
    table.append(row("cut-drag, no keep", 0.85, 0.0, 9.0))  # within 10% of the fastest and keeps nothing: no source
    report.write_text(json.dumps({"suite": suite, "table": table}))
    assert _load("ship_model").choose_control_defaults(report, defaults)["guidance_chosen_by"]["setting"] == "cut-drag, no keep"
    table[-1]["seconds"] = 9.5  # beyond 10%: the faster row that keeps the background
    report.write_text(json.dumps({"suite": suite, "table": table}))
    assert _load("ship_model").choose_control_defaults(report, defaults)["guidance_chosen_by"]["setting"] == "cut-drag"
    table.pop(), suite["settings"].pop()
    table[1]["displacement_share"], table[0]["split"] = 0.7, 0.1  # no row on every goal: the largest share within limits
    report.write_text(json.dumps({"suite": suite, "table": table}))
    chosen = _load("ship_model").choose_control_defaults(report, defaults)["guidance_chosen_by"]
    assert chosen["setting"] == "gradient, keep" and not chosen["goals_met"]


def test_track_defaults_take_the_closest_row_on_every_point_drag_goal(tmp_path):
    """Issue 27: among the point-drag rows meeting every goal the lowest Mean Distance wins, even over a closer row
    that splits the object (ties within a standard error: fewest splits, then cheapest); stored as the fields it ran
    with (the suite's guidance, then the row's); with no row on goal, the lowest split rate; and a track run of the
    folder then resolves to that row."""
    from moft.front.control import plan_settings
    from moft.method.settings import track_settings
    from moft.models.record import ModelRecord

    settings = [{"name": "paper", "points": "paper"},
                {"name": "segment 20", "method": "cut-drag", "start": "proxy", "release": 20, "point_region": "segment"},
                {"name": "segment 24", "method": "cut-drag", "start": "proxy", "release": 24, "point_region": "segment"}]
    row = lambda name, md, split, cost: {"setting": name, "requests": 24, "mean_distance": md,  # noqa: E731
                                         "ssim_outside": 0.93, "split": split, "cost": cost}
    summary = [row("unguided", 0.14, 0.0, 1.0), row("paper", 0.01, 1.0, 5.5), row("segment 20", 0.04, 0.0, 1.9),
               row("segment 24", 0.02, 0.0, 1.9)]
    report, defaults = tmp_path / "r.json", tmp_path / "moft.json"
    guidance = {"method": "gradient", "start": "noise", "release": None, "keep": "off", "keep_until": None}
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    written = _load("ship_model").choose_track_settings(report, defaults)
    assert written["tracks_chosen_by"]["setting"] == "segment 24" and written["tracks_chosen_by"]["goals_met"]
    assert written["tracks"] == {"method": "cut-drag", "start": "proxy", "release": 24, "keep": "off",
                                 "keep_until": None, "point_region": "segment"}
    record = ModelRecord.from_dict(written)
    g = plan_settings(record, flags=track_settings(record)).guidance
    assert (g.method, g.release, g.point_region, g.keep, g.points) == ("cut-drag", 24, "segment", "off", "off")
    summary[3]["cost"] = 2.5  # over 2x: segment 20 is the only row on goal
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    assert _load("ship_model").choose_track_settings(report, defaults)["tracks_chosen_by"]["setting"] == "segment 20"
    summary[2]["split"] = summary[3]["split"] = 0.25  # none on goal: the fewest splits, then the closest
    summary[3]["split"] = 0.2
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    chosen = _load("ship_model").choose_track_settings(report, defaults)["tracks_chosen_by"]
    assert chosen["setting"] == "segment 24" and not chosen["goals_met"]
    summary[2].update(requests=64, split=0.25)  # run on more requests: the only candidate, even off goal
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    chosen = _load("ship_model").choose_track_settings(report, defaults)["tracks_chosen_by"]
    assert chosen["setting"] == "segment 20" and chosen["requests"] == 64
    # on goal, Mean Distances within a standard error of the closest tie: the fewest splits, then the cheapest
    summary = [dict(row("segment 24", 0.020, 0.04, 1.9), mean_distance_se=0.002), row("segment 20", 0.021, 0.0, 1.9),
               row("paper", 0.0215, 0.0, 1.5), row("unguided", 0.14, 0.0, 1.0)]
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    assert _load("ship_model").choose_track_settings(report, defaults)["tracks_chosen_by"]["setting"] == "paper"
    summary[2]["mean_distance"] = 0.023  # beyond the standard error: no longer a tie
    report.write_text(json.dumps({"settings": settings, "guidance": guidance, "summary": summary}))
    assert _load("ship_model").choose_track_settings(report, defaults)["tracks_chosen_by"]["setting"] == "segment 20"


def test_vae_decoder_tuning_keeps_the_encoder_and_counts_its_steps(tmp_path):
    """Stage 1b moves the decoder only (the latents a denoiser trained on stay bit for bit), writes RUN/vae, and
    its step count survives in the log when the checkpoint is gone (a committed resumption point)."""
    import types

    import torch

    train = _load("train_shipped_model")
    organism = train.ORGANISMS["wan"]
    vae = organism.build(seed=0).vae
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    args = types.SimpleNamespace(run=tmp_path, vae_decoder_steps=2, vae_batch=9, object_weight=10.0, seed=0)
    tuned = train.tune_vae_decoder(args, vae, organism)
    after = tuned.state_dict()
    encoder = [k for k in after if k.startswith(("encoder.", "quant_conv."))]
    decoder = [k for k in after if k.startswith(("decoder.", "post_quant_conv."))]
    assert encoder and decoder and len(encoder) + len(decoder) == len(after)
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert sum(not torch.equal(before[k], after[k]) for k in decoder) > len(decoder) // 2
    assert (tmp_path / "vae" / "config.json").is_file() and train.decoder_steps(tmp_path) == 2
    assert train.tune_vae_decoder(args, tuned, organism) is tuned  # done: nothing to do
    (tmp_path / "vae_decoder_ckpt.pt").unlink()
    assert train.decoder_steps(tmp_path) == 2  # from the log
    args.vae_decoder_steps = 3
    with pytest.raises(SystemExit, match="checkpoint is gone"):
        train.tune_vae_decoder(args, tuned, organism)


def test_quality_markdown_shows_the_decoding_folds_spread(quality_report):
    report = json.loads(json.dumps(quality_report))
    report["moft_decoding"]["fold_accuracies_moft_all_channels"] = [0.4, 0.5, 0.6, 0.5, 0.5]
    md = _load("model_quality").markdown(report)
    # standard error of the mean over 5 folds: std (ddof 1) 0.0707 / sqrt(5) = 3.2 points
    assert "50.0% (folds 40.0–60.0%, standard error 3.2 points)" in md


def test_reconstruction_loss_is_mse_plus_l1_and_weights_shift_it_to_the_objects():
    import torch

    train = _load("train_shipped_model")
    recon, x = torch.zeros(2, 3, 9, 4, 4), torch.zeros(2, 3, 9, 4, 4)
    recon[..., 0, 0] = 1.0  # an error at one pixel of every frame
    plain = train.reconstruction_loss(recon, x)
    assert plain == pytest.approx(torch.nn.functional.mse_loss(recon, x) + 0.1 * torch.nn.functional.l1_loss(recon, x))
    on, off = torch.ones(2, 1, 9, 4, 4), torch.ones(2, 1, 9, 4, 4)
    on[..., 0, 0], off[..., 3, 3] = 11.0, 11.0  # the object where the error is, or elsewhere
    assert train.reconstruction_loss(recon, x, on) > plain > train.reconstruction_loss(recon, x, off)


def test_point_drag_rows_are_keyed_by_the_point_they_were_asked(tmp_path, monkeypatch):
    """Issue 27: the suite's point is on the largest object of the prompt's colour (not between two of them), and a
    row is cached under the request it ran: a moved point or a new point protocol never reuses it."""
    from types import SimpleNamespace

    from moft.io.synthetic import COLORS

    m = _load("point_drag")
    frames = np.zeros((4, 32, 32, 3))
    frames[:, 4:10, 20:26] = COLORS["red"]  # (F, H, W, 3) the object, centre (22.5, 6.5)
    frames[:, 24:27, 2:5] = COLORS["red"]  # a smaller one: together their centroid is on the background
    req = {"name": "down", "direction": "down", "speed": 0.125}
    request = m.point_request(SimpleNamespace(frames=frames), None, "a red disk", req)
    assert request["path"] == [[22.5, 6.5], [22.5, 10.5], [22.5, 14.5], [22.5, 18.5]]
    assert m.point_request(SimpleNamespace(frames=frames[..., ::-1]), None, "a red disk", req) == {
        "status": "no red object in source"}
    suite, setting = {"steps": 25}, {"name": "s", "method": "cut-drag"}
    row = lambda r, s=setting: m._row_file(tmp_path, "moft-tiny", suite, "a red disk", 900, req, s, r, None)  # noqa: E731
    assert row(request) == row(json.loads(json.dumps(request)))  # what a rerun reads back keys the same row
    assert row(request) != row(dict(request, path=[[17.7, 12.5]] * 4))
    # a row that drags the object's segment is keyed by the segmentation's tolerances too; other rows are not
    segment = {"name": "seg", "method": "cut-drag", "point_region": "segment"}
    keys = (row(request), row(request, segment))
    monkeypatch.setattr(m, "SEGMENT_TOLERANCES", (0.25,))
    assert row(request) == keys[0] and row(request, segment) != keys[1]
    before = m._request_file(tmp_path, "moft-tiny", suite, "a red disk", 900, req)
    monkeypatch.setattr(m, "POINT_PROTOCOL", m.POINT_PROTOCOL + 1)
    assert m._request_file(tmp_path, "moft-tiny", suite, "a red disk", 900, req) != before


def test_split_origin_blames_the_first_stage_that_split_and_only_split_results():
    """scripts/split_origin.py: a split result is attributed to the first of proxy -> VAE round trip -> result with
    more pieces than the source; a result the model mended (no more pieces than the source) is no one's split."""
    _load("point_drag")  # split_origin reads the suite as point_drag.py does (run as a script, scripts/ is on the path)
    origin = _load("split_origin").origin
    assert origin({"source": 1, "proxy": 2, "round trip": 2, "result": 2}) == "proxy"
    assert origin({"source": 1, "proxy": 1, "round trip": 3, "result": 2}) == "round trip"
    assert origin({"source": 2, "proxy": 2, "round trip": 2, "result": 3}) == "result"
    assert origin({"source": 2, "proxy": 3, "round trip": 3, "result": 2}) is None


def test_segment_tolerance_counts_the_part_of_the_object_a_segment_leaves_behind():
    """scripts/segment_tolerance.py: the object is its extent over every frame (frame 0 renders part of it dimmer);
    a segment grown at one tolerance on frame 0 misses the dim part, the ladder takes it, a far pixel is a leak."""
    from moft.method.drag import grow_segment

    m = _load("segment_tolerance")
    frames = np.zeros((3, 32, 32, 3), np.float32)  # (F, H, W, 3)
    frames[:, 10:20, 10:20] = (1.0, 0.0, 0.0)
    frames[0, 10:13, 10:20] = (0.8, 0.15, 0.1)  # frame 0: the top rows dimmer (0.26 from the red: outside 0.25)
    extent = m.object_extent(frames, (1.0, 0.0, 0.0), np.array([15.0, 16.0]))
    assert extent.sum() == 100  # the whole square: the later frames show the top rows
    miss, leak = m.coverage(grow_segment(frames[0], np.array([[15.0, 16.0]]), 0.25), extent)
    assert miss == pytest.approx(0.2) and leak == 0.0  # 2 of the 3 dim rows (the one-pixel rim takes the third)
    assert m.coverage(grow_segment(frames[0], np.array([[15.0, 16.0]])), extent) == (0.0, 0.0)
    assert m.coverage(None, extent) is None
    cases = [{"t": (0.3, 0.0)}, {"t": (0.0, 0.5)}, {"t": None}]
    assert m.summary(cases, "t") == {"fallback": 1, "miss_over": 1, "leak_over": 1, "miss_mean": 0.15, "leak_mean": 0.25}


def test_segment_tolerance_measures_the_later_frames_join_a_candidate_not_shipped():
    """join_later: a part of the object frame 0 renders dimmer (beyond every tolerance of the ladder) joins the segment
    where a later frame's fill covers it and frame 0 has it within the join's tolerance; the background the object
    grows onto later and a far speck of its colour stay out; a tolerance the dim part is beyond joins nothing."""
    from moft.method.drag import SEGMENT_TOLERANCES, grow_segment

    m = _load("segment_tolerance")
    frame = np.zeros((32, 32, 3), np.float32)
    frame[12:18, 8:14] = (1.0, 0.1, 0.1)
    frame[12:14, 8:14] = (0.6, 0.05, 0.05)  # the square's top rows dim in frame 0
    point = np.array([[10.0, 16.0]])
    assert np.linalg.norm(frame[12, 10] - frame[16, 10]) > max(SEGMENT_TOLERANCES)
    later = np.zeros((2, 32, 32, 3), np.float32)
    later[:, 12:18, 8:17] = (1.0, 0.1, 0.1)  # bright later, and grown right onto the background
    later[:, 2:5, 26:29] = (1.0, 0.1, 0.1)  # a red speck far away
    segment = grow_segment(frame, point)
    square = np.zeros((32, 32), bool)
    square[12:18, 8:14] = True
    whole = cv2.dilate(square.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not segment[12].any() and (m.join_later(segment, frame, later, point, 0.5) == whole).all()
    assert (m.join_later(segment, frame, later, point, 0.35) == segment).all()  # the dim rows are 0.41 away
