"""Heads on top of embeddings: scikit-learn linear models (stored as plain arrays) and a small torch MLP.

Every head maps embeddings to *scores* (logits, or standardised regression values); :mod:`transferkit.model`
turns scores into labels and probabilities, so a head fitted by scikit-learn, a head trained by
fine-tuning and a head loaded from safetensors behave identically.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV

from transferkit.targets import TargetEncoder
from transferkit.training.loop import adamw

LOGISTIC_C = 1.0
CS = np.logspace(-2, 3, 11)  # the grid of C that cross-validated logistic regressions search
# Below this many rows (and fewer rows than features), cross-validated logistic regression runs on the rows' kernel
# factor instead of the features (see cross_validated_logistic).
KERNEL_ROWS = 1000
# Folds run in worker processes only on problems this large (stored values x classes beyond the first): starting
# the workers costs about 5 s, more than small problems take on one core.
PARALLEL_WORK = 400_000


class LinearHead:
    """Scores = embeddings @ coef.T + intercept.

    Args:
        coef: (n_outputs, dim) weights.
        intercept: (n_outputs,) biases.
    """

    kind = "linear"

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, **info: Any) -> None:
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)  # safetensors saves contiguous tensors only
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float32)
        self.info = info

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.coef.T + self.intercept

    def to_torch(self) -> torch.nn.Module:
        layer = torch.nn.Linear(self.coef.shape[1], self.coef.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.coef))
            layer.bias.copy_(torch.from_numpy(self.intercept))
        return layer

    def state(self) -> dict[str, torch.Tensor]:
        return {"coef": torch.from_numpy(self.coef), "intercept": torch.from_numpy(self.intercept)}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.info}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], config: dict[str, Any]) -> LinearHead:
        info = {k: v for k, v in config.items() if k != "kind"}
        return cls(state["coef"].numpy(), state["intercept"].numpy(), **info)

    @classmethod
    def from_torch(cls, layer: torch.nn.Linear, **info: Any) -> LinearHead:
        return cls(layer.weight.detach().cpu().numpy().copy(), layer.bias.detach().cpu().numpy().copy(), **info)


class MLPHead:
    """A one-hidden-layer perceptron (GELU, dropout), trained with AdamW and early stopping."""

    kind = "mlp"

    def __init__(self, dim: int, n_outputs: int, hidden: int = 256, dropout: float = 0.1) -> None:
        self.hidden, self.dropout = hidden, dropout
        self.network = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_outputs)
        )

    @torch.inference_mode()
    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        self.network.eval()
        return self.network(torch.from_numpy(np.asarray(embeddings, dtype=np.float32))).numpy()

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.network.state_dict().items()}

    def config(self) -> dict[str, Any]:
        first, last = self.network[0], self.network[3]
        return {
            "kind": self.kind,
            "dim": first.in_features,
            "n_outputs": last.out_features,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], config: dict[str, Any]) -> MLPHead:
        head = cls(config["dim"], config["n_outputs"], config["hidden"], config["dropout"])
        head.network.load_state_dict(state)
        return head


def head_from_state(state: dict[str, torch.Tensor], config: dict[str, Any]) -> LinearHead | MLPHead:
    return {"linear": LinearHead, "mlp": MLPHead}[config["kind"]].from_state(state, config)


def loss_function(task: str, n_outputs: int):
    """The training loss that matches each task's scores."""
    if task == "regression":
        return torch.nn.MSELoss()
    if task == "multilabel" or n_outputs == 1:
        return lambda scores, target: torch.nn.functional.binary_cross_entropy_with_logits(
            scores, target.float().reshape(scores.shape)
        )
    return torch.nn.CrossEntropyLoss()


def fit_linear_head(
    embeddings: np.ndarray, target: np.ndarray, encoder: TargetEncoder, *, seed: int | None = 0
) -> LinearHead:
    """Fit a scikit-learn linear head: logistic regression (one per label for multi-label) or ridge.

    Logistic regression keeps C=1. Choosing C by cross-validation was measured and lost: on normalised
    sentence embeddings with 8-64 labels per class, CV picked over-regularised heads from tiny folds and
    scored 0-1.2 points of macro-F1 *below* C=1 on held-out data (SpamAssassin, AFINN; 3 seeds).
    Ridge picks alpha by efficient leave-one-out, which is exact and cheap.
    """
    if encoder.task == "regression":
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(embeddings, target)
        coef = np.atleast_2d(ridge.coef_)
        return LinearHead(coef, np.atleast_1d(ridge.intercept_), alpha=float(ridge.alpha_))
    if encoder.task == "multilabel":
        models = [_logistic(embeddings, target[:, column].astype(int), seed) for column in range(target.shape[1])]
        return LinearHead(
            np.stack([m.coef_[0] for m in models]), np.array([m.intercept_[0] for m in models]), C=LOGISTIC_C
        )
    model = _logistic(embeddings, target, seed)
    n_outputs = encoder.n_outputs
    if n_outputs > 1 and len(model.intercept_) != n_outputs:  # classes absent from these examples: never predicted
        coef = np.zeros((n_outputs, embeddings.shape[1]))
        intercept = np.full(n_outputs, -1e4)
        present = np.unique(target)
        if len(present) == 2:  # scikit-learn's binary form: one logit for the second class against the first
            intercept[present[0]] = 0.0
            coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        return LinearHead(coef, intercept, C=LOGISTIC_C)
    return LinearHead(model.coef_, model.intercept_, C=LOGISTIC_C)


def _logistic(embeddings: np.ndarray, labels: np.ndarray, seed: int | None) -> LogisticRegression:
    if len(np.unique(labels)) < 2:  # a label that is always (or never) on: a constant head
        model = LogisticRegression()
        model.coef_ = np.zeros((1, embeddings.shape[1]))
        model.intercept_ = np.array([10.0 if labels[0] == 1 else -10.0])
        return model
    return LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed).fit(embeddings, labels)


def cross_validated_logistic(
    X: Any, target: np.ndarray, folds: Any, seed: int | None, scoring: Any = None
) -> tuple[LinearHead, float]:
    """Logistic regression with C chosen from :data:`CS` by cross-validation on ``folds`` (any scikit-learn
    splitter; refitted on all of ``X`` with that C), and the best C's mean cross-validated score (``scoring``:
    scikit-learn's; accuracy if None).

    Where ``X`` (dense or sparse) has fewer rows than columns, and at most :data:`KERNEL_ROWS` rows, the search runs
    on ``Z = U sqrt(S)`` (from the eigendecomposition ``X X^T = U S U^T``) and the weights are mapped back. With an
    L2 penalty this is the same problem, exactly: the weights lie in the span of the rows, where ``Z`` is ``X`` in
    an orthonormal basis, on every fold. It is far quicker: L-BFGS needs many fewer steps in n than in d
    dimensions (State of the Union, 64 paragraphs x 18,862 n-grams, 8 classes: 0.6 s instead of 12.9 s, the same
    weights within 1e-9).
    """
    original, basis = X, None
    rows, columns = X.shape
    if rows < columns and rows <= KERNEL_ROWS:
        gram = X @ X.T
        values, vectors = np.linalg.eigh(gram.toarray() if issparse(gram) else np.asarray(gram, dtype=np.float64))
        kept = values > values.max() * 1e-10
        X, basis = vectors[:, kept] * np.sqrt(values[kept]), vectors[:, kept] / np.sqrt(values[kept])
    work = (X.nnz if issparse(X) else X.size) * max(1, len(np.unique(target)) - 1)
    jobs = min(folds.get_n_splits(), len(os.sched_getaffinity(0))) if work >= PARALLEL_WORK else 1
    model = LogisticRegressionCV(Cs=CS, cv=folds, scoring=scoring, max_iter=3000, random_state=seed, n_jobs=jobs)
    with warnings.catch_warnings():  # scikit-learn 1.8 announces default changes we do not depend on
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(X, target)
    per_fold = next(iter(model.scores_.values()))  # (folds, Cs); the same for every class of a multinomial model
    coef = model.coef_
    if basis is not None:  # back from the kernel factor: w = X^T U S^(-1/2) v
        coef = np.asarray(original.T @ (basis @ coef.T)).T
    C = float(np.atleast_1d(model.C_)[0])
    return LinearHead(coef, model.intercept_, C=C), float(per_fold.mean(axis=0).max())


def fit_mlp_head(
    embeddings: np.ndarray,
    target: np.ndarray,
    encoder: TargetEncoder,
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 200,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-2,
    patience: int = 20,
    seed: int | None = 0,
) -> MLPHead:
    """Train an :class:`MLPHead` full-batch, keeping the epoch with the lowest validation loss."""
    generator_seed = 0 if seed is None else seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        head = MLPHead(embeddings.shape[1], encoder.n_outputs)
        loss_fn = loss_function(encoder.task, encoder.n_outputs)
        optimizer = adamw(head.network.parameters(), lr=learning_rate, weight_decay=weight_decay)
        features = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        labels = torch.from_numpy(target)
        check = valid or (embeddings, target)
        check_x, check_y = torch.from_numpy(np.asarray(check[0], dtype=np.float32)), torch.from_numpy(check[1])
        best, best_loss, waited = None, float("inf"), 0
        for _ in range(epochs):
            head.network.train()
            optimizer.zero_grad()
            loss_fn(head.network(features), labels).backward()
            optimizer.step()
            head.network.eval()
            with torch.no_grad():
                loss = float(loss_fn(head.network(check_x), check_y))
            if loss < best_loss - 1e-5:
                best, best_loss, waited = copy.deepcopy(head.network.state_dict()), loss, 0
            else:
                waited += 1
                if waited >= patience:
                    break
        head.network.load_state_dict(best)
    return head
