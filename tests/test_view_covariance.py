"""deep.view_covariance: X and X' from views, against Gaussians with known covariances, and the
commutation measures against constructions that do and do not commute, and the uncentred moments Ā, C̄
against numpy on deterministic and recorded views (issue 21)."""
import numpy as np
import pytest
import torch

from deep import augment
from deep.data import load_dataset
from deep.view_covariance import covariances_from_views, mode_spectra, pooled_views, view_moments


def test_x_and_x_prime_are_recovered_from_views_of_known_gaussians():
    """x ~ N(0, A), each view x + N(0, B): X → A, X' → B. With n = 40,000 images the sampling error of
    an entry is about √((A_ii A_jj + A_ij²)/n) ≤ 0.011 here, so 0.05 is ≥ 4.5 standard errors."""
    rng = np.random.default_rng(0)
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
    B = np.array([[0.3, 0.1, 0.0], [0.1, 0.6, 0.0], [0.0, 0.0, 0.2]])
    n, m = 40_000, 4
    x = rng.multivariate_normal(np.zeros(3), A, size=n)
    views = x[:, None, :] + rng.multivariate_normal(np.zeros(3), B, size=(n, m))
    X, Xp = covariances_from_views(views + 5.0)  # a shared offset: both are centred
    assert np.abs(X - A).max() < 0.05 and np.abs(Xp - B).max() < 0.02


def test_commuting_covariances_read_as_commuting_and_others_do_not():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    X = basis @ np.diag([5.0, 3.0, 2.0, 1.0, 0.5]) @ basis.T
    Xp = basis @ np.diag([0.1, 0.2, 0.3, 0.4, 0.5]) @ basis.T
    spectra = mode_spectra(X, Xp)
    assert spectra["lam"] == pytest.approx([5, 3, 2, 1, 0.5]) and spectra["nu"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert spectra["commutator"] < 1e-12 and spectra["off_diagonal"] < 1e-12
    other = mode_spectra(X, np.diag([0.1, 0.2, 0.3, 0.4, 0.5]))  # X' diagonal in another basis
    assert other["commutator"] > 0.01 and other["off_diagonal"] > 0.01


def test_pooled_views_of_real_augmentations_differ_between_views_and_have_the_pooled_size():
    data = load_dataset("synthetic")
    images = data.test.images[:20]
    views = pooled_views(images, augment.BYOL_VIEWS[0], 3, torch.Generator().manual_seed(0), data.mean, data.std)
    assert views.shape == (20, 3, 3 * 8 * 8)
    assert not np.allclose(views[:, 0], views[:, 1])
    X, Xp = covariances_from_views(views)
    assert np.all(np.linalg.eigvalsh(Xp) > -1e-9)  # a covariance
    with pytest.raises(ValueError, match="pool dividing"):
        pooled_views(images, augment.BYOL_VIEWS[0], 3, torch.Generator(), data.mean, data.std, pool=5)


def _numpy_inputs(images, mean, std, flip=False) -> np.ndarray:
    """The 192-d inputs by hand: normalise, optionally flip, mean of each 4 × 4 window, flatten."""
    x = (images.numpy().astype(np.float64) / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    x = x[..., ::-1] if flip else x
    n, c, h, w = x.shape
    return x.reshape(n, c, 8, h // 8, 8, w // 8).mean(axis=(3, 5)).reshape(n, -1)


def test_view_moments_equal_numpy_on_deterministic_views():
    """View 1 the image itself, view 2 its mirror image (full crop, flip with probability 1, nothing
    else): Ā and C̄ are the sample's exact moments, whatever the generator and the number of draws."""
    data = load_dataset("synthetic")
    images = data.test.images[:30]
    still = dict(crop_scale=(1, 1), crop_ratio=(1, 1), jitter_p=0, gray_p=0)
    configs = (augment.AugmentConfig(flip_p=0, **still), augment.AugmentConfig(flip_p=1, **still))
    A_bar, C_bar = view_moments(images, configs, 2, torch.Generator().manual_seed(0), data.mean, data.std)
    x1, x2 = _numpy_inputs(images, data.mean, data.std), _numpy_inputs(images, data.mean, data.std, flip=True)
    n = len(images)
    assert A_bar.dtype == np.float64 and A_bar.shape == (192, 192)
    np.testing.assert_allclose(A_bar, (x1.T @ x1 + x2.T @ x2) / (2 * n), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(C_bar, (x2.T @ x1 + x1.T @ x2) / (2 * n), rtol=1e-5, atol=1e-6)


def test_view_moments_of_random_views_match_their_draws_and_a_bar_minus_c_bar_is_psd():
    """BYOL's two views, 3 draws each: the same generator's draws, read back one by one, give Ā (every
    draw) and C̄ (per-image means of the draws, outer products summed image by image). Ā − C̄ is a sum
    of covariances (module docstring), so PSD up to rounding on any sample, not only in expectation."""
    data = load_dataset("synthetic")
    images, views = data.test.images[:25], 3
    A_bar, C_bar = view_moments(images, augment.BYOL_VIEWS, views, torch.Generator().manual_seed(3), data.mean, data.std)
    generator = torch.Generator().manual_seed(3)
    draws = np.array([[augment.augment(images, cfg, generator, data.mean, data.std).double().numpy()
                       for cfg in augment.BYOL_VIEWS] for _ in range(views)])  # (views, 2, n, C, H, W)
    pooled = draws.reshape(*draws.shape[:4], 8, 4, 8, 4).mean(axis=(5, 7)).reshape(views, 2, len(images), -1)
    expected_a = sum(np.outer(x, x) for x in pooled.reshape(-1, 192)) / (2 * views * len(images))
    means = pooled.mean(axis=0)
    expected_c = sum(np.outer(a, b) + np.outer(b, a) for a, b in zip(means[0], means[1])) / (2 * len(images))
    np.testing.assert_allclose(A_bar, expected_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(C_bar, expected_c, rtol=1e-5, atol=1e-6)
    assert np.array_equal(C_bar, C_bar.T)
    assert np.linalg.eigvalsh(A_bar - C_bar).min() > -1e-9 * np.abs(A_bar).max()
    assert np.linalg.eigvalsh(A_bar - C_bar).max() > 1e-3 * np.abs(A_bar).max()  # the views do differ


@pytest.mark.parametrize("configs, views, shape", [(augment.BYOL_VIEWS[:1], 1, None), (augment.BYOL_VIEWS, 0, None),
                                                   (augment.BYOL_VIEWS, 1, (3, 32, 32))])
def test_view_moments_refuses_bad_inputs(configs, views, shape):
    data = load_dataset("synthetic")
    images = data.test.images[:4] if shape is None else data.test.images[0]
    with pytest.raises(ValueError, match="two view configs"):
        view_moments(images, configs, views, torch.Generator(), data.mean, data.std)
