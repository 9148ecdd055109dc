"""The synthetic-object protocol's objects (moft.eval.objects): prompts' objects and the images a suite makes."""

from __future__ import annotations

import numpy as np

from moft.eval.objects import object_box, prompt_objects, suite_image
from moft.io.synthetic import COLORS


def test_prompt_objects_pair_each_colour_with_its_own_shape():
    assert prompt_objects("a yellow disk and a green square") == [("yellow", "disk"), ("green", "square")]
    assert prompt_objects("a green, a blue square") == [("green", "disk"), ("blue", "square")]  # no shape: a disk
    assert prompt_objects("a corgi on a beach") == []


def test_the_suite_image_has_the_prompts_colour_at_the_box_it_reports():
    """The renderer places the object analytically: its colour fills the disk around the centre it reports, the
    box ``object_box`` finds in the image (what a request moves) is centred there, and far away there is none."""
    for prompt, seed in (("a green square standing still", 400), ("a purple disk standing still", 400),
                         ("a cyan square standing still", 7)):
        image, centres, radii = suite_image(prompt, seed, 32, 48)  # (H, W, 3) uint8, non-square
        assert image.shape == (32, 48, 3) and image.dtype == np.uint8
        color = prompt_objects(prompt)[0][0]
        (cx, cy), r = centres[0], radii[0]
        ys, xs = np.mgrid[0:32, 0:48]
        inside = np.hypot(xs - cx, ys - cy) < r - 1  # (H, W): fully covered pixels of either shape
        far = np.hypot(xs - cx, ys - cy) > r * np.sqrt(2) + 1  # (H, W): beyond a square's corners
        rgb = np.asarray(COLORS[color]) * 255
        assert inside.sum() >= 9 and np.abs(image[inside] - rgb).max() <= 1
        assert (np.linalg.norm(image[far] / 255 - rgb / 255, axis=-1) > 0.25).all()  # the background is not the object
        centre, box = object_box(image[None] / 255.0, color)
        assert np.hypot(*(centre - centres[0])) < 0.75
        x0, y0, x1, y1 = box
        assert x0 * 48 < cx - r + 0.5 and x1 * 48 > cx + r + 0.5 and y0 * 32 < cy - r + 0.5 and y1 * 32 > cy + r + 0.5


def test_the_suite_image_is_reproducible_and_its_own_per_prompt_and_seed():
    a, b = suite_image("a red disk standing still", 10, 32, 32)[0], suite_image("a red disk standing still", 10, 32, 32)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, suite_image("a red disk standing still", 11, 32, 32)[0])
    assert not np.array_equal(a, suite_image("a red disk moving", 10, 32, 32)[0])


def test_two_objects_are_both_drawn_apart():
    image, centres, radii = suite_image("a yellow disk and a green square", 400, 32, 32)
    assert np.hypot(*(centres[0] - centres[1])) > radii.sum()
    for color, c in zip(("yellow", "green"), centres):
        assert np.hypot(*(object_box(image[None] / 255.0, color)[0] - c)) < 0.75
