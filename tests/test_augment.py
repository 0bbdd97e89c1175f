"""deep.augment: each operation's statistics, torchvision as the reference, determinism and sharding."""
import dataclasses
import math

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings, strategies as st

from deep.augment import (BYOL_VIEWS, AugmentConfig, apply_augmentation, augment, crop_boxes,
                          normalize, sample_augmentation)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
# Only the operation under test: full-image crop, nothing else random.
PLAIN = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, solarize_p=0.0)


def images(n=64, channels=3, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=generator)


def draw(n, cfg, seed=0):
    return sample_augmentation(n, cfg, torch.Generator().manual_seed(seed), "cpu")


def within_binomial(count, n, p, sigmas=5):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def unnormalize(x, mean=MEAN, std=STD):
    return x * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("field, value", [
    ("flip_p", -0.1), ("jitter_p", 1.5), ("gray_p", float("nan")), ("solarize_p", "often"),
    ("crop_scale", (0.0, 1.0)), ("crop_scale", (0.5, 1.2)), ("crop_scale", (0.8, 0.2)), ("crop_scale", 0.5),
    ("crop_ratio", (-1.0, 2.0)), ("crop_ratio", (2.0, 1.0)),
    ("jitter", (0.4, -0.1, 0.2, 0.1)), ("jitter", (0.4, 0.4, 0.2, 0.6)), ("jitter", (0.4, 0.4)),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"AugmentConfig.{field}"):
        AugmentConfig(**{field: value})


def test_config_defaults_are_the_thesis_pipeline_and_byol_views_differ_only_in_solarize():
    cfg = AugmentConfig()
    assert (cfg.crop_scale, cfg.flip_p, cfg.jitter, cfg.jitter_p, cfg.gray_p) == ((0.08, 1.0), 0.5,
                                                                                  (0.4, 0.4, 0.2, 0.1), 0.8, 0.2)
    assert cfg.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert [v.solarize_p for v in BYOL_VIEWS] == [0.0, 0.2]
    assert BYOL_VIEWS[0] == AugmentConfig() and BYOL_VIEWS[1] == AugmentConfig(solarize_p=0.2)


def test_config_stores_lists_as_tuples_so_it_stays_hashable():
    cfg = AugmentConfig(crop_scale=[0.2, 1], jitter=[0.1, 0.1, 0.1, 0.0])
    assert cfg.crop_scale == (0.2, 1.0) and isinstance(cfg.jitter, tuple)
    hash(cfg)


# ------------------------------------------------------------------------------------ crop


def test_crop_matches_torchvision_get_params_in_distribution():
    """Area fraction and aspect ratio of 20000 boxes against torchvision's RandomResizedCrop: the
    two-sample Kolmogorov–Smirnov distance stays below the 0.1% critical value (≈ 0.0195)."""
    cfg, n = AugmentConfig(), 20000
    ours = crop_boxes(draw(n, cfg), cfg, 32, 32).double()
    torch.manual_seed(0)
    reference = torch.tensor([T.RandomResizedCrop.get_params(torch.empty(3, 32, 32), [0.08, 1.0], [3 / 4, 4 / 3])
                              for _ in range(n)], dtype=torch.float64)

    def ks(a, b):
        grid = torch.cat([a, b]).unique()
        cdf = lambda v: torch.searchsorted(v.sort().values, grid, right=True) / len(v)  # noqa: E731
        return (cdf(a) - cdf(b)).abs().max().item()

    for stat in (lambda b: b[:, 2] * b[:, 3] / 1024, lambda b: b[:, 3] / b[:, 2], lambda b: b[:, 0], lambda b: b[:, 1]):
        assert ks(stat(ours), stat(reference)) < 0.0195


@settings(deadline=None, max_examples=60)
@given(lo=st.floats(0.01, 1.0), span=st.floats(0.0, 1.0), ratio_lo=st.floats(0.2, 2.0), ratio_span=st.floats(1.0, 3.0),
       height=st.integers(1, 40), width=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_crop_boxes_follow_torchvisions_rule(lo, span, ratio_lo, ratio_span, height, width, seed):
    cfg = AugmentConfig(crop_scale=(lo, lo + span * (1 - lo)), crop_ratio=(ratio_lo, ratio_lo * ratio_span))
    d = draw(200, cfg, seed)
    top, left, h, w = crop_boxes(d, cfg, height, width).unbind(dim=1)
    assert ((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)).all()
    # each attempt's drawn area fraction and aspect ratio lie in the configured ranges
    assert ((d.crop_area >= cfg.crop_scale[0]) & (d.crop_area <= cfg.crop_scale[1])).all()
    assert ((d.crop_ratio >= cfg.crop_ratio[0] * (1 - 1e-12)) & (d.crop_ratio <= cfg.crop_ratio[1] * (1 + 1e-12))).all()
    # a box is the first attempt that fits once rounded to pixels, or the centred fallback
    for i in range(len(d)):
        target = height * width * d.crop_area[i]
        sizes = [(round(math.sqrt(a * r)), round(math.sqrt(a / r)))
                 for a, r in zip(target.tolist(), d.crop_ratio[i].tolist())]
        fitting = [(hh, ww) for ww, hh in sizes if 0 < ww <= width and 0 < hh <= height]
        if fitting:
            assert (h[i].item(), w[i].item()) == fitting[0]
        else:
            assert top[i] == (height - h[i]) // 2 and left[i] == (width - w[i]) // 2
            assert h[i] == height or w[i] == width


def test_crop_fallback_clamps_the_whole_image_to_the_ratio_range():
    """No attempt can fit (a crop of the full area at ratio ≥ 2 is wider than the image): the
    fallback keeps the full width and the height of ratio 2, centred."""
    cfg = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(2.0, 3.0))
    boxes = crop_boxes(draw(50, cfg), cfg, 32, 32)
    assert (boxes == torch.tensor([8, 0, 16, 32])).all()


def test_crop_area_and_ratio_ranges_on_real_sized_images():
    cfg = AugmentConfig()
    top, left, h, w = crop_boxes(draw(5000, cfg), cfg, 32, 32).double().unbind(dim=1)
    area, ratio = h * w / 1024, w / h
    # rounding to whole pixels moves the area by at most (√A + ½)² − A of the target
    assert area.min() >= 0.08 - 2 * math.sqrt(0.08 * 1024) / 1024 and area.max() <= 1
    assert ratio.min() >= 3 / 4 - 0.1 and ratio.max() <= 4 / 3 + 0.1


def test_full_crop_is_the_identity_and_flip_mirrors():
    x = images()
    plain = apply_augmentation(x, draw(len(x), AugmentConfig(**PLAIN)), AugmentConfig(**PLAIN), MEAN, STD)
    torch.testing.assert_close(plain, normalize(x, MEAN, STD), atol=1e-5, rtol=0)
    flip_cfg = AugmentConfig(**{**PLAIN, "flip_p": 1.0})
    flipped = apply_augmentation(x, draw(len(x), flip_cfg), flip_cfg, MEAN, STD)
    torch.testing.assert_close(flipped, normalize(x.flip(-1), MEAN, STD), atol=1e-5, rtol=0)


def test_flip_rate_is_one_half():
    n = 20000
    assert within_binomial(draw(n, AugmentConfig()).flip.sum().item(), n, 0.5)


def test_output_size_can_differ_from_the_input():
    x = images(8)
    out = augment(x, AugmentConfig(), torch.Generator().manual_seed(0), MEAN, STD, out_size=24)
    assert out.shape == (8, 3, 24, 24) and out.dtype == torch.float32


# ------------------------------------------------------------------------------------ colour


def test_jitter_rate_and_factor_ranges():
    n, cfg = 20000, AugmentConfig()
    d = draw(n, cfg)
    assert within_binomial(d.jitter.sum().item(), n, 0.8)
    factors = d.jitter_factors
    for column, (lo, hi) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1)]):
        assert factors[:, column].min() >= lo and factors[:, column].max() <= hi
        assert factors[:, column].mean() == pytest.approx((lo + hi) / 2, abs=0.01)


def test_images_without_jitter_keep_their_colours_exactly():
    cfg = AugmentConfig(**{**PLAIN, "jitter_p": 0.5})
    x, d = images(), draw(64, cfg)
    out = apply_augmentation(x, d, cfg, MEAN, STD)
    plain = apply_augmentation(x, dataclasses.replace(d, jitter=torch.zeros_like(d.jitter)), cfg, MEAN, STD)
    assert d.jitter.any() and not d.jitter.all()
    assert torch.equal(out[~d.jitter], plain[~d.jitter])
    assert (out[d.jitter] - plain[d.jitter]).abs().amax(dim=(1, 2, 3)).min() > 0


def test_grayscale_gives_equal_channels_at_its_rate():
    cfg = AugmentConfig(gray_p=0.2)
    x, d = images(400), draw(400, cfg)
    out = unnormalize(apply_augmentation(x, d, cfg, MEAN, STD))
    equal = (out[:, 0] - out[:, 1]).abs().amax(dim=(1, 2)) + (out[:, 1] - out[:, 2]).abs().amax(dim=(1, 2)) < 1e-5
    assert torch.equal(equal, d.grayscale)
    assert within_binomial(d.grayscale.sum().item(), 400, 0.2)


def test_solarize_inverts_pixels_above_one_half():
    cfg = AugmentConfig(**{**PLAIN, "solarize_p": 1.0})
    x = images()
    out = unnormalize(apply_augmentation(x, draw(64, cfg), cfg, MEAN, STD))
    clean = x.float() / 255
    torch.testing.assert_close(out, torch.where(clean >= 0.5, 1 - clean, clean), atol=1e-5, rtol=0)
    assert within_binomial(draw(20000, BYOL_VIEWS[1]).solarize.sum().item(), 20000, 0.2)
    assert not draw(20000, BYOL_VIEWS[0]).solarize.any()


@settings(deadline=None, max_examples=40)
@given(shift=st.floats(-0.5, 0.5), seed=st.integers(0, 2**31 - 1))
def test_hue_rotation_equals_torchvision_and_keeps_max_and_min(shift, seed):
    x = images(4, seed=seed)
    cfg = AugmentConfig(**{**PLAIN, "jitter_p": 1.0, "jitter": (0.0, 0.0, 0.0, 0.5)})
    d = draw(4, cfg)
    forward = dataclasses.replace(d, jitter_factors=torch.tensor([[1.0, 1.0, 1.0, shift]] * 4))
    out = unnormalize(apply_augmentation(x, forward, cfg, MEAN, STD))
    expected = TF.adjust_hue(x.float() / 255, shift)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    value, minimum = out.amax(dim=1), out.amin(dim=1)  # hue keeps each pixel's max and min
    torch.testing.assert_close(value, x.float().amax(dim=1) / 255, atol=1e-5, rtol=0)
    torch.testing.assert_close(minimum, x.float().amin(dim=1) / 255, atol=1e-5, rtol=0)


def test_whole_pipeline_equals_torchvision_functional_ops_image_by_image():
    """Each image through torchvision's own functions with the same parameters, in our fixed jitter
    order. Tolerance: we weight luma by BT.601's 0.299 (as PIL), torchvision by 0.2989."""
    cfg = AugmentConfig(solarize_p=0.5)
    for channels, mean, std in ((3, MEAN, STD), (1, (0.5,), (0.25,))):
        x, d = images(96, channels, seed=channels), draw(96, cfg, seed=channels)
        out = apply_augmentation(x, d, cfg, mean, std)
        boxes = crop_boxes(d, cfg, 32, 32)
        for i in range(len(x)):
            view = TF.resized_crop(x[i].float() / 255, *boxes[i].tolist(), [32, 32], antialias=True)
            if d.flip[i]:
                view = TF.hflip(view)
            if d.jitter[i]:
                brightness, contrast, saturation, hue = d.jitter_factors[i].tolist()
                view = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(
                    view, brightness), contrast), saturation), hue)
            if d.grayscale[i]:
                view = TF.rgb_to_grayscale(view, channels)
            if d.solarize[i]:
                view = TF.solarize(view, 0.5)
            torch.testing.assert_close(out[i], TF.normalize(view, mean, std), atol=2e-3, rtol=0)


def test_one_channel_images_get_brightness_and_contrast_only():
    cfg = AugmentConfig(**{**PLAIN, "jitter_p": 1.0, "gray_p": 1.0})
    x = images(32, channels=1)
    d = draw(32, cfg)
    out = apply_augmentation(x, d, cfg, (0.5,), (0.25,))
    assert out.shape == (32, 1, 32, 32)
    brightness, contrast = d.jitter_factors[:, 0, None, None, None], d.jitter_factors[:, 1, None, None, None]
    bright = (x.float() / 255 * brightness).clamp(0, 1)
    expected = (contrast * bright + (1 - contrast) * bright.mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)
    torch.testing.assert_close(out, (expected - 0.5) / 0.25, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ randomness


def test_two_views_of_the_same_images_differ():
    x, generator = images(), torch.Generator().manual_seed(0)
    first, second = (augment(x, cfg, generator, MEAN, STD) for cfg in BYOL_VIEWS)
    assert (first - second).abs().amax(dim=(1, 2, 3)).min() > 0.1


def test_a_fixed_seed_gives_the_same_views():
    x = images()
    run = lambda seed: augment(x, BYOL_VIEWS[1], torch.Generator().manual_seed(seed), MEAN, STD)  # noqa: E731
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@settings(deadline=None, max_examples=20)
@given(start=st.integers(0, 63), length=st.integers(0, 64))
def test_a_slice_of_a_global_draw_augments_a_shard_bit_for_bit(start, length):
    stop = min(64, start + length)
    x, cfg = images(), BYOL_VIEWS[1]
    d = draw(64, cfg)
    whole = apply_augmentation(x, d, cfg, MEAN, STD)
    shard = apply_augmentation(x[start:stop], d.slice(start, stop), cfg, MEAN, STD)
    assert torch.equal(shard, whole[start:stop])


def test_the_random_stream_depends_only_on_the_batch_size():
    """Two configs drawn from equal generators use the same uniforms: the stream is not shifted by
    probabilities or ranges (so a run's RNG state means the same whatever its config)."""
    generators = [torch.Generator().manual_seed(0) for _ in range(2)]
    a = sample_augmentation(16, AugmentConfig(), generators[0], "cpu")
    b = sample_augmentation(16, AugmentConfig(flip_p=0.0, solarize_p=1.0, crop_scale=(0.5, 1.0)), generators[1], "cpu")
    assert torch.equal(a.crop_offset, b.crop_offset) and torch.equal(a.crop_ratio, b.crop_ratio)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())


# ------------------------------------------------------------------------------------ interface


def test_normalize_standardises_per_channel():
    x = images(4)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(x, MEAN, STD), expected)


def test_bad_inputs_are_refused():
    x = images(4)
    with pytest.raises(ValueError, match="rows for a batch of 4"):
        apply_augmentation(x, draw(5, AugmentConfig()), AugmentConfig(), MEAN, STD)
    with pytest.raises(ValueError, match="uint8"):
        normalize(x.float(), MEAN, STD)
    with pytest.raises(ValueError, match="mean must have one value per channel"):
        normalize(x, (0.5,), STD)
    with pytest.raises(ValueError, match="out_size"):
        augment(x, AugmentConfig(), torch.Generator(), MEAN, STD, out_size=0)


# ------------------------------------------------------------------ the supervised crop-and-flip view

def test_crop_flip_is_torchvisions_padded_random_crop_and_flip():
    """CropFlip with its drawn parameters equals torchvision's pad(4) → crop(32×32 at the offset) → hflip."""
    from deep.augment import CropFlip

    x, view = images(n=48, size=32), CropFlip()
    draw = view.sample(len(x), torch.Generator().manual_seed(3), "cpu")
    out = view.apply(x, draw, MEAN, STD)
    for i in range(len(x)):
        top, left = draw.offset[i].tolist()
        expected = TF.crop(TF.pad(x[i], [4, 4, 4, 4], fill=0), top, left, 32, 32)
        if draw.flip[i]:
            expected = TF.horizontal_flip(expected)
        torch.testing.assert_close(out[i], normalize(expected[None], MEAN, STD)[0])


def test_crop_flip_draws_every_offset_and_flips_half():
    from deep.augment import CropFlip

    draw = CropFlip().sample(20000, torch.Generator().manual_seed(0), "cpu")
    counts = torch.bincount(draw.offset.flatten(), minlength=9)
    assert len(counts) == 9 and all(within_binomial(int(c), 40000, 1 / 9) for c in counts)
    assert within_binomial(int(draw.flip.sum()), 20000, 0.5)


def test_training_views_pick_the_supervised_or_the_self_supervised_pipeline():
    from deep.augment import CropFlip, training_views

    assert training_views("crop_flip", 1) == (CropFlip(),)
    assert training_views("ssl", 2) == BYOL_VIEWS and training_views("ssl", 1) == BYOL_VIEWS[:1]
    with pytest.raises(ValueError, match="unknown augmentation"):
        training_views("autoaugment", 1)


def test_training_views_are_byol_table_6_without_blur():
    """The values cited in deep/presets.py: BYOL (Grill et al. 2020, Table 6; deepmind-research
    byol/utils/augmentations.py augment_config and byol/utils/dataset.py), blur left out."""
    from deep.augment import training_views

    first, second = training_views("ssl", 2)
    for view, solarize in ((first, 0.0), (second, 0.2)):
        assert view.crop_scale == (0.08, 1.0) and view.crop_ratio == pytest.approx((3 / 4, 4 / 3))
        assert view.flip_p == 0.5 and view.jitter == (0.4, 0.4, 0.2, 0.1) and view.jitter_p == 0.8
        assert view.gray_p == 0.2 and view.solarize_p == solarize
