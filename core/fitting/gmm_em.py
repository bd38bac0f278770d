"""Full-covariance Gaussian mixture fitted by expectation–maximisation (NumPy, seeded).

Used once, offline, to build the open pose prior (``python -m core.fitting.build_open_prior``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianMixture", "fit_gmm", "gmm_log_likelihood"]


@dataclass
class GaussianMixture:
    """means (K, D), covars (K, D, D), weights (K,) summing to 1; log_likelihood = mean
    per-sample log-likelihood at the end of the fit; n_iter = EM iterations run."""

    means: np.ndarray
    covars: np.ndarray
    weights: np.ndarray
    log_likelihood: float = float("nan")
    n_iter: int = 0


def _component_log_pdf(X: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """(N, D) → (N, K) log N(x | μ_k, Σ_k) via Cholesky factors."""
    N, D = X.shape
    out = np.empty((N, len(means)))
    for k, (mu, cov) in enumerate(zip(means, covars)):
        L = np.linalg.cholesky(cov)
        z = np.linalg.solve(L, (X - mu).T)                       # (D, N)
        log_det = 2.0 * np.log(np.diag(L)).sum()
        out[:, k] = -0.5 * (z * z).sum(0) - 0.5 * log_det - 0.5 * D * np.log(2.0 * np.pi)
    return out


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def gmm_log_likelihood(X: np.ndarray, gmm: GaussianMixture) -> np.ndarray:
    """(N, D) samples → (N,) log p(x) under the mixture (sum over components)."""
    lp = _component_log_pdf(np.asarray(X, np.float64), gmm.means, gmm.covars) + np.log(gmm.weights)
    return _logsumexp(lp, 1)


def _kmeans_pp(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: (k, D) initial centres."""
    centres = [X[rng.integers(len(X))]]
    d2 = ((X - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        c = X[rng.choice(len(X), p=d2 / d2.sum())]
        centres.append(c)
        d2 = np.minimum(d2, ((X - c) ** 2).sum(1))
    return np.stack(centres)


def fit_gmm(X: np.ndarray, n_components: int = 8, n_iter: int = 200, tol: float = 1e-5,
            reg_covar: float = 1e-4, seed: int = 0, kmeans_iters: int = 20) -> GaussianMixture:
    """Fit a full-covariance GMM by EM (k-means++ / k-means initialisation).

    Args:
        X: (N, D) samples, N ≥ n_components.
        n_components: K.
        n_iter: maximum EM iterations.
        tol: stop when the mean log-likelihood improves by less than this.
        reg_covar: added to every covariance diagonal (keeps them positive definite).
        seed: NumPy seed (k-means++ seeding); the fit is deterministic.
        kmeans_iters: Lloyd iterations before EM.
    Returns:
        :class:`GaussianMixture` (float64).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < n_components:
        raise ValueError(f"fit_gmm: X must be (N, D) with N ≥ {n_components}, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("fit_gmm: X contains NaN or inf")
    rng = np.random.default_rng(seed)
    N, D = X.shape
    centres = _kmeans_pp(X, n_components, rng)
    for _ in range(kmeans_iters):
        d2 = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
        lab = d2.argmin(1)
        for k in range(n_components):
            if (lab == k).any():
                centres[k] = X[lab == k].mean(0)
    resp = np.zeros((N, n_components))
    resp[np.arange(N), lab] = 1.0
    eye = np.eye(D)
    prev = -np.inf
    ll = -np.inf
    it = 0
    for it in range(1, n_iter + 1):
        # M step
        nk = resp.sum(0) + 1e-10
        weights = nk / N
        means = (resp.T @ X) / nk[:, None]
        covars = np.empty((n_components, D, D))
        for k in range(n_components):
            diff = X - means[k]
            covars[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg_covar * eye
        # E step
        lp = _component_log_pdf(X, means, covars) + np.log(weights)
        norm = _logsumexp(lp, 1)
        resp = np.exp(lp - norm[:, None])
        ll = float(norm.mean())
        if ll - prev < tol:
            break
        prev = ll
    return GaussianMixture(means, covars, weights, ll, it)
