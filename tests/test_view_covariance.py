"""deep.view_covariance: X and X' from views, against Gaussians with known covariances, and the
commutation measures against constructions that do and do not commute (issue 21)."""
import numpy as np
import pytest
import torch

from deep import augment
from deep.data import load_dataset
from deep.view_covariance import covariances_from_views, mode_spectra, pooled_views


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
