"""The views of SPEC §3 (BYOL's pipeline without blur, as thesis 2.3.3 and 4.2 describe it; every
value's source is listed in deep/presets.py), batched on the device.

One view of an image, in torchvision's order: random resized crop to the output size, horizontal
flip, colour jitter (brightness, contrast, saturation, hue) with probability `jitter_p`, grayscale
with probability `gray_p`, solarize with probability `solarize_p`, then normalize. Every random
parameter is drawn per image, for the whole batch at once (`sample_augmentation`), and applied with
a few whole-batch tensor operations (`apply_augmentation`): no per-image Python loop, no PIL, no
host synchronisation, so it runs inside the training step on the CPU or the GPU.

Choices where torchvision leaves room (each checked against torchvision's own functions in
tests/test_augment.py):
- crop: torchvision's `RandomResizedCrop.get_params` exactly: up to 10 attempts of (area fraction
  ~ U(scale), aspect ratio ~ exp U(log ratio)) rounded to whole pixels, the first that fits wins,
  else the centre crop clamped to the ratio range. The crop is resampled bilinearly with one
  `grid_sample` call whose grid also does the flip; sample points are clamped to the crop, which
  makes it equal to cropping then `interpolate(..., align_corners=False)`. Not antialiased: exact
  as long as the output is no smaller than the crop, which always holds at the default output size
  (the input's size).
- colour jitter: the four operations in a fixed order, brightness → contrast → saturation → hue
  (torchvision shuffles the order per call; a fixed order keeps the batch on one code path). The
  factors are torchvision's: U[max(0, 1 − b), 1 + b] for brightness, contrast, saturation and
  U[−h, h] for hue. Hue is an exact rotation in HSV space (torchvision's RGB → HSV → RGB round
  trip, computed without branching on the max channel). Gray is BT.601 luma, 0.299 R + 0.587 G +
  0.114 B, as PIL's (torchvision's tensor path uses 0.2989 for R).
- solarize: pixels ≥ ½ (on [0, 1]) become 1 − pixel, BYOL's threshold (Grill et al. 2020, App. B).
- one channel (Fashion-MNIST): brightness and contrast only; saturation, hue and grayscale are
  no-ops, as in torchvision.
"""
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

CROP_ATTEMPTS = 10  # torchvision RandomResizedCrop.get_params
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights, PIL's for grayscale


def _pair(name, value, high):
    """A validated range (min, max) with 0 < min <= max <= high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"AugmentConfig.{name} must be a pair of numbers (min, max), got {value!r}") from None
    if not (0 < lo <= hi <= high and math.isfinite(hi)):  # also rejects NaN
        bound = f" <= {high}" if math.isfinite(high) else ""
        raise ValueError(f"AugmentConfig.{name} must be finite with 0 < min <= max{bound}, got {value!r}")
    return lo, hi


def _probability(name, value):
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {value!r}") from None
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {value!r}")
    return p


def _jitter(value):
    message = ("AugmentConfig.jitter must be (brightness, contrast, saturation, hue) with the first three "
               f">= 0 and hue in [0, 0.5], got {value!r}")
    try:
        strengths = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if len(strengths) != 4 or not all(math.isfinite(s) and s >= 0 for s in strengths) or strengths[3] > 0.5:
        raise ValueError(message)
    return strengths


@dataclass(frozen=True)
class AugmentConfig:
    """One view's augmentation (SPEC §3); defaults are BYOL's first view without blur (Grill et al. 2020,
    Table 6; each value's source, and where the thesis' reference code differs, in deep/presets.py).

    crop_scale: range of the crop's area as a fraction of the image, in (0, 1].
    crop_ratio: range of the crop's aspect ratio (width / height).
    flip_p: probability of a horizontal flip.
    jitter: strengths (brightness, contrast, saturation, hue) of the colour jitter.
    jitter_p, gray_p, solarize_p: probabilities of colour jitter, grayscale and solarize.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    solarize_p: float = 0.0

    def sample(self, n: int, generator: torch.Generator, device) -> "Draw":
        return sample_augmentation(n, self, generator, device)

    def apply(self, images: torch.Tensor, draw: "Draw", mean, std) -> torch.Tensor:
        return apply_augmentation(images, draw, self, mean, std)

    def __post_init__(self):
        validated = {
            "crop_scale": _pair("crop_scale", self.crop_scale, 1.0),
            "crop_ratio": _pair("crop_ratio", self.crop_ratio, math.inf),
            "jitter": _jitter(self.jitter),
            **{name: _probability(name, getattr(self, name))
               for name in ("flip_p", "jitter_p", "gray_p", "solarize_p")},
        }
        for name, value in validated.items():
            object.__setattr__(self, name, value)


# BYOL's two asymmetric views (Grill et al. 2020, Table 6; deepmind-research byol/utils/augmentations.py):
# solarize only in the second. The thesis' reference code solarizes neither (deep/presets.py).
BYOL_VIEWS = (AugmentConfig(solarize_p=0.0), AugmentConfig(solarize_p=0.2))


@dataclass(frozen=True)
class Draw:
    """Every random number of one augmentation of n images; row i belongs to image i.

    crop_area, crop_ratio: (n, CROP_ATTEMPTS) float64 crop attempts (area fraction, aspect ratio);
        `crop_boxes` turns them into pixel boxes once the image size is known.
    crop_offset: (n, 2) float64 in [0, 1): where the crop sits in the room left (top, left).
    flip: (n,) bool.
    jitter_factors: (n, 4) float32 brightness, contrast, saturation, hue factors.
    jitter, grayscale, solarize: (n,) bool, whether each image gets that operation.
    """

    crop_area: torch.Tensor
    crop_ratio: torch.Tensor
    crop_offset: torch.Tensor
    flip: torch.Tensor
    jitter_factors: torch.Tensor
    jitter: torch.Tensor
    grayscale: torch.Tensor
    solarize: torch.Tensor

    def __len__(self) -> int:
        return self.flip.shape[0]

    def slice(self, start: int, stop: int) -> "Draw":
        """Rows start:stop: a rank's shard of a globally drawn batch, bit-identical to the same rows."""
        return Draw(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


def sample_augmentation(n: int, cfg: AugmentConfig, generator: torch.Generator, device) -> Draw:
    """Draw the parameters of `cfg` for n images from `generator` (on its own device), put them on `device`.

    One uniform draw of shape (n, 30) feeds everything, so the stream consumed depends only on n.
    """
    if n < 0:
        raise ValueError(f"number of images must be >= 0, got {n}")
    u = torch.rand((n, 2 * CROP_ATTEMPTS + 10), generator=generator, dtype=torch.float64, device=generator.device)
    u = u.to(device)
    area_u, ratio_u, rest = u.split([CROP_ATTEMPTS, CROP_ATTEMPTS, 10], dim=1)
    offset_u, flip_u, factor_u, jitter_u, gray_u, solarize_u = rest.split([2, 1, 4, 1, 1, 1], dim=1)

    scale_lo, scale_hi = cfg.crop_scale
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    b, c, s, h = cfg.jitter
    factor_ranges = [(max(0.0, 1 - b), 1 + b), (max(0.0, 1 - c), 1 + c), (max(0.0, 1 - s), 1 + s), (-h, h)]
    factors = [lo + (hi - lo) * factor_u[:, i] for i, (lo, hi) in enumerate(factor_ranges)]
    return Draw(
        crop_area=scale_lo + (scale_hi - scale_lo) * area_u,
        crop_ratio=torch.exp(log_lo + (log_hi - log_lo) * ratio_u),
        crop_offset=offset_u.contiguous(),
        flip=flip_u[:, 0] < cfg.flip_p,
        jitter_factors=torch.stack(factors, dim=1).float(),
        jitter=jitter_u[:, 0] < cfg.jitter_p,
        grayscale=gray_u[:, 0] < cfg.gray_p,
        solarize=solarize_u[:, 0] < cfg.solarize_p,
    )


def crop_boxes(draw: Draw, cfg: AugmentConfig, height: int, width: int) -> torch.Tensor:
    """(n, 4) int64 boxes (top, left, crop height, crop width) in pixels, by torchvision's rule.

    The first of the attempts whose rounded size fits the image wins; if none fits, the whole
    image clamped to the ratio range `cfg.crop_ratio`, centred (torchvision's fallback). `cfg` is the
    config the draw was sampled with.
    """
    target_area = height * width * draw.crop_area
    w = torch.round(torch.sqrt(target_area * draw.crop_ratio))  # half to even, like Python's round
    h = torch.round(torch.sqrt(target_area / draw.crop_ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first fitting attempt
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    top = torch.floor(draw.crop_offset[:, 0] * (height - h + 1))
    left = torch.floor(draw.crop_offset[:, 1] * (width - w + 1))

    ratio_lo, ratio_hi = cfg.crop_ratio
    if width / height < ratio_lo:  # at least one pixel, where torchvision would make an empty crop
        fallback_w, fallback_h = width, max(1, round(width / ratio_lo))
    elif width / height > ratio_hi:
        fallback_w, fallback_h = max(1, round(height * ratio_hi)), height
    else:
        fallback_w, fallback_h = width, height
    fitted = fits.any(dim=1)
    top = torch.where(fitted, top, (height - fallback_h) // 2)
    left = torch.where(fitted, left, (width - fallback_w) // 2)
    h = torch.where(fitted, h, fallback_h)
    w = torch.where(fitted, w, fallback_w)
    return torch.stack([top, left, h, w], dim=1).long()


def _resized_crop(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, out_size: int) -> torch.Tensor:
    """Bilinear resize of each image's box to out_size², mirrored where `flip`, in one grid_sample.

    Output pixel k of a box (start, length) samples source coordinate start + (k + ½)·length/S − ½
    (pixel centres at integers, align_corners=False), clamped to the box's first and last pixel
    centres, which is what interpolating the cropped image does at its border.
    """
    height, width = x.shape[-2:]
    top, left, h, w = boxes.to(x.dtype).unbind(dim=1)
    k = (torch.arange(out_size, device=x.device, dtype=x.dtype) + 0.5) / out_size
    k_x = torch.where(flip[:, None], 1 - k, k)  # a flip reads the columns right to left

    def source(start, length, fraction, size):
        pixel = (start[:, None] - 0.5 + fraction * length[:, None]).clamp(start[:, None], (start + length - 1)[:, None])
        return (2 * pixel + 1) / size - 1  # grid_sample's normalised coordinates

    grid_x = source(left, w, k_x, width)
    grid_y = source(top, h, k[None, :].expand_as(grid_x), height)
    grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """B×1×H×W grayscale of a B×3×H×W image."""
    r, g, b = x.unbind(dim=1)
    return (LUMA[0] * r).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(1)


def _blend_(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: factor·x + (1 − factor)·other, clipped to [0, 1] (torchvision's `_blend`)."""
    return x.mul_(factor).addcmul_(other, 1 - factor).clamp_(0, 1)


def _select_(x: torch.Tensor, other: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """In place: `other` where the per-image flag `chosen` (B,) is set, else x.

    x·(1 − w) + other·w with w exactly 0 or 1 selects bit for bit; it avoids torch.where, whose
    full-size boolean masks are an order of magnitude slower than arithmetic on the CPU.
    """
    weight = chosen.to(x.dtype)[:, None, None, None]
    return x.mul_(1 - weight).addcmul_(other, weight)


def _rotate_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Add `shift` (B×1×1, in turns) to the HSV hue of a B×3×H×W image, keeping value and saturation.

    HSV hue h ∈ [0, 6) in sixths of a turn, without branching on the max channel: with chroma
    C = max − min and E = (g + b − r − min)/C, the hexagon gives h = 3 − sign(g − b)·(2 − E)
    (E rises from −1 to 2 while h goes 0 → 3 with g ≥ b, and falls back while h goes 3 → 6).
    Back to RGB by the standard formula channel = max − C·clip(min(k, 4 − k), 0, 1),
    k = (n + h) mod 6, n = 5, 3, 1 for R, G, B; equivalently channel = min + C·clip(d − 1, 0, 1)
    with d = 3 − ||h − c| − 3| the distance from h to c = 3, 5, 1 around the circle of length 6.
    Grey pixels (C = 0) come back unchanged.
    """
    r, g, b = x.unbind(dim=1)
    # Buffers are reused in place (`out=`, trailing _): this runs every step, and fresh full-size
    # temporaries cost page faults on the CPU.
    minimum = torch.minimum(torch.minimum(r, g), b)
    chroma = torch.maximum(r, g)
    torch.maximum(chroma, b, out=chroma).sub_(minimum)
    scratch = torch.clamp_min(chroma, 1e-12)
    hue = (g + b).sub_(r).sub_(minimum).div_(scratch)  # E, 0 where C = 0
    torch.sub(g, b, out=scratch)
    hue.neg_().add_(2).copysign_(scratch).neg_().add_(3 + 6 * shift)  # h = 3 − sign(g − b)·(2 − E), shifted
    hue.sub_(torch.div(hue, 6, out=scratch).floor_().mul_(6))  # back into [0, 6)
    out = torch.empty_like(x)
    for channel, centre in enumerate((3.0, 5.0, 1.0)):
        level = torch.sub(hue, centre, out=out[:, channel]).abs_().sub_(3).abs_().neg_().add_(2).clamp_(0, 1)
        level.mul_(chroma).add_(minimum)  # min + C·clip(d − 1, 0, 1)
    return out


def _color_jitter_(x: torch.Tensor, factors: torch.Tensor, applied: torch.Tensor, hue_range: float) -> torch.Tensor:
    """In place: brightness → contrast → saturation → hue with per-image factors, only where `applied`."""
    neutral = (1.0, 1.0, 1.0, 0.0)  # the factors that change nothing
    brightness, contrast, saturation, hue = (torch.where(applied, factor, unchanged).to(x.dtype)[:, None, None, None]
                                             for factor, unchanged in zip(factors.unbind(dim=1), neutral))
    x.mul_(brightness).clamp_(0, 1)  # blending with black
    gray_mean = (_luma(x) if x.shape[1] == 3 else x).mean(dim=(1, 2, 3), keepdim=True)
    _blend_(x, gray_mean, contrast)  # contrast blends with the image's mean gray
    if x.shape[1] == 1:  # saturation and hue need colour
        return x
    _blend_(x, _luma(x), saturation)
    if hue_range == 0:
        return x
    return _select_(x, _rotate_hue(x, hue[:, 0]), applied)


def _solarize(x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Solarize (threshold ½, BYOL) the images where `chosen` (B,) is set: x ≥ ½ ↦ 1 − x.

    For x in [0, 1], min(x, 1 − x) is exactly that (1 − x ≤ x iff x ≥ ½; 1 − x is exact there);
    the other images get min(x, 3 − x) = x. Arithmetic instead of a full-size boolean mask (see
    `_select_`).
    """
    ceiling = 3 - 2 * chosen.to(x.dtype)[:, None, None, None]
    return torch.minimum(x, ceiling - x, out=x)


def _standardize_(x: torch.Tensor, mean, std) -> torch.Tensor:
    """In place: (x − mean) / std per channel, for x in [0, 1]; mean and std are per-channel
    sequences (floats, or a tensor's elements: nothing is copied to the device)."""
    channels = x.shape[1]
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != channels:
            raise ValueError(f"{name} must have one value per channel ({channels}), got {len(values)}")
    for channel in range(channels):
        x[:, channel].sub_(mean[channel]).div_(std[channel])
    return x


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a uint8 tensor B×C×H×W with C = 1 or 3, got {images.dtype} "
                         f"of shape {tuple(images.shape)}")


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """The clean (evaluation) view: uint8 B×C×H×W → float32, scaled to [0, 1], standardised per channel."""
    _check_images(images)
    return _standardize_(images.float().div_(255), mean, std)


def apply_augmentation(images: torch.Tensor, draw: Draw, cfg: AugmentConfig, mean, std,
                       out_size: int | None = None) -> torch.Tensor:
    """Augment uint8 B×C×H×W images with the parameters in `draw` (drawn with `cfg`).

    Returns float32 B×C×S×S, standardised with the per-channel `mean`, `std` (in [0, 1] units);
    S = `out_size`, by default the input's height (square inputs).
    """
    _check_images(images)
    batch, channels, height, width = images.shape
    if len(draw) != batch:
        raise ValueError(f"draw has {len(draw)} rows for a batch of {batch} images")
    out_size = height if out_size is None else out_size
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")

    x = _resized_crop(images.float(), crop_boxes(draw, cfg, height, width), draw.flip, out_size).div_(255)
    x = _color_jitter_(x, draw.jitter_factors, draw.jitter, cfg.jitter[3])
    if channels == 3 and cfg.gray_p > 0:
        _select_(x, _luma(x), draw.grayscale)
    if cfg.solarize_p > 0:
        x = _solarize(x, draw.solarize)
    return _standardize_(x, mean, std)


def augment(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, mean, std,
            out_size: int | None = None) -> torch.Tensor:
    """One random view of each image: `sample_augmentation` then `apply_augmentation` on images.device."""
    draw = sample_augmentation(images.shape[0], cfg, generator, images.device)
    return apply_augmentation(images, draw, cfg, mean, std, out_size)


# ------------------------------------------------------------------------- supervised augmentation

@dataclass(frozen=True)
class CropFlipDraw:
    """Random numbers of `CropFlip` for n images: offset (n, 2) int64 top-left corner of the crop in
    the padded image (row, column), each in [0, 2·pad]; flip (n,) bool."""

    offset: torch.Tensor
    flip: torch.Tensor

    def __len__(self) -> int:
        return self.flip.shape[0]

    def slice(self, start: int, stop: int) -> "CropFlipDraw":
        return CropFlipDraw(self.offset[start:stop], self.flip[start:stop])


@dataclass(frozen=True)
class CropFlip:
    """The standard supervised CIFAR augmentation (He et al. 2016, Sec. 4.2): zero-pad `pad` pixels on
    every side, take a random crop of the original size, flip horizontally with probability `flip_p`
    (torchvision: RandomCrop(size, padding=pad), RandomHorizontalFlip()), then normalize. Padding is
    zero in pixel values, i.e. black before normalization, as torchvision pads the PIL image."""

    pad: int = 4
    flip_p: float = 0.5

    def __post_init__(self):
        if not isinstance(self.pad, int) or self.pad < 0:
            raise ValueError(f"CropFlip.pad must be a whole number >= 0, got {self.pad!r}")
        object.__setattr__(self, "flip_p", _probability("flip_p", self.flip_p))

    def sample(self, n: int, generator: torch.Generator, device) -> CropFlipDraw:
        offset = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator, device=device)
        flip = torch.rand(n, generator=generator, device=device) < self.flip_p
        return CropFlipDraw(offset, flip)

    def apply(self, images: torch.Tensor, draw: CropFlipDraw, mean, std) -> torch.Tensor:
        _check_images(images)
        batch, _, height, width = images.shape
        if len(draw) != batch:
            raise ValueError(f"draw has {len(draw)} rows for a batch of {batch} images")
        padded = F.pad(images, (self.pad,) * 4)
        rows = draw.offset[:, :1] + torch.arange(height, device=images.device)           # (B, H)
        columns = torch.arange(width, device=images.device).expand(batch, width)
        columns = torch.where(draw.flip[:, None], columns.flip(1), columns) + draw.offset[:, 1:]  # (B, W)
        picked = padded[torch.arange(batch, device=images.device)[:, None, None], :, rows[:, :, None],
                        columns[:, None, :]]                                              # (B, H, W, C)
        return _standardize_(picked.permute(0, 3, 1, 2).float().div_(255).contiguous(), mean, std)


def training_views(augmentation: str, count: int) -> tuple:
    """The view configurations of one training step: `count` views of BYOL's pair (`ssl`), or the
    supervised `crop_flip` view."""
    if augmentation == "crop_flip":
        return (CropFlip(),) * count
    if augmentation == "ssl":
        return BYOL_VIEWS[:count]
    raise ValueError(f"unknown augmentation {augmentation!r}; allowed: crop_flip, ssl")
