"""Metrics on classifier features: Frechet distance, precision / recall / coverage and
per-class diversity (see toolkit.eval.models for what each means and its paper)."""

from __future__ import annotations

import torch
from torch import nn

from toolkit.errors import EvaluationError

K_NEAREST = 3  # the k of the k-NN manifolds behind precision, recall and coverage (both papers' default)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor, extractor: nn.Module, batch_size: int = 256) -> float:
    """Fréchet distance between two sets through torchmetrics' FID with a custom extractor.

    real, fake: whatever ``extractor`` takes, batched along dim 0; ``extractor`` returns
    ``(N, D)`` features and has ``num_features = D``. Both sets need at least 2 samples (and
    more than D for a well-conditioned covariance).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=extractor)
    for chunk in real.split(batch_size):
        metric.update(chunk, real=True)
    for chunk in fake.split(batch_size):
        metric.update(chunk, real=False)
    # The matrix square root's round-off can leave identical sets a hair below zero.
    return max(float(metric.compute()), 0.0)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, D)``, ``(M, D)`` -> Euclidean distances ``(N, M)``, computed exactly (the
    matmul shortcut's round-off would put a sample a hair away from itself)."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(features: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """``(N, D)`` -> ``(N,)``: each sample's distance to its k-th nearest other sample."""
    if len(features) <= k:
        raise EvaluationError(f"k-NN metrics need more than k={k} samples per set, got {len(features)}; "
                              "raise --n-per-class")
    return _distances(features, features).kthvalue(k + 1, dim=1).values  # k + 1: a sample is its own nearest


def precision_recall_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST) -> dict[str, float]:
    """real ``(N, D)``, fake ``(M, D)`` features -> precision, recall and coverage in [0, 1].

    Each sample's k-NN ball (radius: distance to its k-th nearest neighbour in its own
    set) approximates its set's manifold. precision: fake samples inside some real ball;
    recall: real samples inside some fake ball; coverage: real samples whose own ball holds
    at least one fake sample.
    """
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    d = _distances(real, fake)  # (N, M)
    return {
        "precision": (d <= real_radii[:, None]).any(dim=0).double().mean().item(),
        "recall": (d <= fake_radii[None, :]).any(dim=1).double().mean().item(),
        "coverage": (d.min(dim=1).values <= real_radii).double().mean().item(),
    }


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """``(N, D)`` with N >= 2 -> the mean distance between two different samples."""
    n = len(features)
    return (_distances(features, features).sum() / (n * (n - 1))).item()


def diversity(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
              class_names: list[str]) -> dict[str, float]:
    """Per class: mean pairwise distance of the fake samples over that of the real ones
    (features ``(N, D)``, labels ``(N,)``). Classes with fewer than 2 samples on a side are
    left out."""
    ratios = {}
    for label, name in enumerate(class_names):
        r, f = real[real_labels == label], fake[fake_labels == label]
        if len(r) >= 2 and len(f) >= 2:
            ratios[name] = mean_pairwise_distance(f) / max(mean_pairwise_distance(r), 1e-12)
    return ratios

