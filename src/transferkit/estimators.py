"""scikit-learn estimators: ``TransferClassifier`` and ``TransferRegressor``.

They take inputs as ``X`` (texts, image or audio file paths, or arrays, in a list, a 1-D array, a Series, or a
one-column 2-D array / DataFrame), follow the estimator contract (``__init__`` only stores its arguments, learned
state ends in ``_``), and so work in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from transferkit.artifacts import load_model, save_model
from transferkit.backbones.catalog import DEFAULT_TEXT_BACKBONE
from transferkit.config import FitConfig
from transferkit.errors import TransferKitError
from transferkit.settings import declared
from transferkit.strategies.fit import fit_model
from transferkit.strategies.registry import STRATEGIES


def as_inputs(X: Any) -> list[Any]:
    """Validate ``X`` and turn it into the list of inputs a backbone encodes: texts, file paths (images, audio),
    or arrays: a list of them, or a numeric array of images (n, h, w[, c]) split along its first axis. A 2-D
    numeric array is refused: in scikit-learn it means a feature matrix, which a backbone cannot read.

    Raises:
        ValueError: ``X`` is not a collection of texts, paths or arrays.
    """
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    if isinstance(X, str):
        raise ValueError("X must be a collection of inputs, not a single string; wrap it in a list")
    if isinstance(X, np.ndarray) and X.ndim >= 3 and np.issubdtype(X.dtype, np.number):
        if len(X) == 0:
            raise ValueError("X is empty: 0 samples; at least one input is required")
        return list(X)
    if isinstance(X, list | tuple) and X and all(isinstance(item, np.ndarray) for item in X):
        return list(X)
    array = np.asarray(X, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"X must be a 1-D collection of inputs (texts or file paths; or one column), got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError("X is empty: 0 samples; at least one input is required")
    bad = [i for i, value in enumerate(array) if not isinstance(value, str | Path)]
    if bad:
        raise ValueError(
            f"X must contain texts or file paths (str), or arrays; item {bad[0]} is {type(array[bad[0]]).__name__}. "
            "transferkit estimators encode inputs with a pre-trained backbone"
        )
    return [str(value) if isinstance(value, Path) else value for value in array.tolist()]


# Python names of FitConfig fields in scikit-learn's words; FitConfig.options holds the strategies' own settings.
_RENAMED = {"seed": "random_state", "quiet": "verbose"}
# scikit-learn estimators are silent unless asked (verbose=False), where the command line shows progress.
_ESTIMATOR_DEFAULTS = {"verbose": False}


def estimator_parameters() -> list[inspect.Parameter]:
    """The estimators' parameters, derived from the declared settings: ``backbone``, every shared setting of
    :class:`~transferkit.config.FitConfig` (``seed`` as ``random_state``, ``quiet`` inverted as ``verbose``),
    then every strategy's own settings."""
    declarations = [item for item in declared(FitConfig) if item.name != "options"]
    declarations += [item for spec in STRATEGIES if spec.settings for item in declared(spec.settings)]
    parameters = [inspect.Parameter("backbone", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_TEXT_BACKBONE)]
    for item in declarations:
        name = _RENAMED.get(item.name, item.name)
        default = _ESTIMATOR_DEFAULTS.get(name, item.default)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return parameters


class _TransferEstimator(BaseEstimator):
    """Shared by the classifier and the regressor. Parameters (keyword only, all stored as given, as scikit-learn
    requires): ``backbone`` (catalog name, Hugging Face folder or hub id), then the settings of
    :class:`~transferkit.config.FitConfig` and of the strategies (``strategy``, ``head``, ``unfreeze_layers``,
    ``epochs``, ``learning_rate``, ``time_budget``, ...), with ``random_state`` for ``seed`` and ``verbose`` for
    ``not quiet``; ``transferkit.estimators.estimator_parameters()`` lists them with their defaults."""

    def __init__(self, **params: Any) -> None:
        names = {parameter.name: parameter.default for parameter in estimator_parameters()}
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        for name, default in names.items():
            setattr(self, name, params.get(name, default))

    def _config(self) -> FitConfig:
        settings = {name: getattr(self, name) for name in self.get_params() if name != "backbone"}
        settings["seed"] = settings.pop("random_state")
        settings["quiet"] = not settings.pop("verbose")
        try:
            return FitConfig.from_settings(**settings)
        except TransferKitError as error:
            raise ValueError(str(error)) from None

    @staticmethod
    def _require_y(y: Any) -> None:
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None; pass the labels (or targets) of X")

    def _fit(self, inputs: list[Any], y: Any, task: str, X_unlabeled: Any = None) -> None:
        if len(inputs) != len(y):
            raise ValueError(f"X has {len(inputs)} inputs but y has {len(y)} labels; they must match one to one")
        unlabeled = None if X_unlabeled is None else as_inputs(X_unlabeled)
        config = self._config()
        self.model_ = fit_model(inputs, y, task=task, backbone=self.backbone, config=config, unlabeled=unlabeled)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fitted model to a folder (safetensors + JSON)."""
        check_is_fitted(self)
        return save_model(self.model_, path, overwrite=overwrite)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags


class TransferClassifier(ClassifierMixin, _TransferEstimator):
    """Classifier on a pre-trained backbone (binary, multi-class, or multi-label with a 2-D ``y``).

    Args:
        backbone: Catalog name ("minilm"), Hugging Face folder or hub id.
        strategy: "feature-extraction", "finetune" or "auto".
        head: "logistic", "mlp" or "auto" (feature extraction).
        unfreeze_layers: Blocks fine-tuning trains (-1: all).
        random_state: Seed for splits, initialisation and shuffling.
        device: Where training and embedding run: "auto" (a CUDA GPU where torch sees one), "cpu" or "cuda";
            the fitted model ends on the CPU.
        verbose: Show progress bars.

    Attributes:
        classes_: Class labels (for multi-label: column indices of ``y``).
        model_: The fitted :class:`~transferkit.model.TransferModel`.
    """

    def fit(self, X: Any, y: Any, X_unlabeled: Any = None) -> TransferClassifier:
        """Fit on the labeled inputs ``X``; ``X_unlabeled`` (inputs of the domain the model will serve, same kind
        as ``X``, no labels) adapts the model to that domain with the ``adapt`` parameter (default "auto")."""
        inputs = as_inputs(X)
        self._require_y(y)
        y_array = np.asarray(y)
        if y_array.ndim == 2 and type_of_target(y_array) == "multilabel-indicator":
            self.multilabel_ = True
            self.classes_ = np.arange(y_array.shape[1])
            labels = [[str(j) for j in np.flatnonzero(row)] for row in y_array]
            self._fit(inputs, labels, "multilabel", X_unlabeled)
            return self
        if y_array.ndim != 1:
            raise ValueError(f"y must be 1-D labels or a 2-D 0/1 indicator matrix, got shape {y_array.shape}")
        if len(y_array) and y_array.dtype.kind == "f" and not np.isfinite(y_array).all():
            raise ValueError("y contains NaN or infinity; every example needs a label")
        kind = type_of_target(y_array)
        if kind == "continuous":
            raise ValueError("Unknown label type: continuous targets; use TransferRegressor for regression")
        self.multilabel_ = False
        self.classes_ = np.unique(y_array)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class ({self.classes_[0]!r}); classification needs at least two")
        self._label_of = {str(c): c for c in self.classes_}
        self._fit(inputs, [str(v) for v in y_array], "classification", X_unlabeled)
        return self

    def _labels(self, names: list[Any]) -> np.ndarray:
        return np.asarray([self._label_of[str(name)] for name in names], dtype=self.classes_.dtype)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        predicted = self.model_.predict(as_inputs(X))
        if self.multilabel_:
            matrix = np.zeros((len(predicted), len(self.classes_)), dtype=int)
            for row, labels in enumerate(predicted):
                matrix[row, [int(label) for label in labels]] = 1
            return matrix
        return self._labels(predicted)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, columns in ``classes_`` order (per-label probabilities for multi-label)."""
        check_is_fitted(self)
        probabilities = self.model_.predict_proba(as_inputs(X))
        if self.multilabel_:
            order = [
                self.model_.classes.index(str(j)) if str(j) in self.model_.classes else None for j in self.classes_
            ]
            return np.column_stack(
                [probabilities[:, i] if i is not None else np.zeros(len(probabilities)) for i in order]
            )
        return probabilities

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        scores = self.model_.scores(as_inputs(X))
        return scores[:, 0] if scores.shape[1] == 1 else scores

    @classmethod
    def load(cls, path: str | Path) -> TransferClassifier:
        """Restore a classifier saved with :meth:`save` (or any classification model folder)."""
        model = load_model(path)
        estimator = cls(backbone=model.backbone.name, strategy=model.strategy)
        estimator.model_ = model
        estimator.multilabel_ = model.task == "multilabel"
        estimator.classes_ = np.array(model.classes if not estimator.multilabel_ else range(len(model.classes)))
        estimator._label_of = {str(c): c for c in estimator.classes_}
        return estimator


class TransferRegressor(RegressorMixin, _TransferEstimator):
    """Regressor on a pre-trained backbone (ridge head, or fine-tuning with an MSE loss)."""

    def fit(self, X: Any, y: Any, X_unlabeled: Any = None) -> TransferRegressor:
        """Fit on ``X``, ``y``; ``X_unlabeled`` adapts the model to an unlabeled target domain (see the classifier)."""
        inputs = as_inputs(X)
        self._require_y(y)
        if np.iscomplexobj(np.asarray(y)):
            raise ValueError("Complex data not supported: y must be real numbers")
        y_array = np.asarray(y, dtype=float)
        if y_array.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D (or 2-D for several targets), got shape {y_array.shape}")
        if not np.isfinite(y_array).all():
            raise ValueError("y contains NaN or infinity; every example needs a numeric target")
        self._fit(inputs, y_array.tolist(), "regression", X_unlabeled)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.model_.predict(as_inputs(X)), dtype=float)

    @classmethod
    def load(cls, path: str | Path) -> TransferRegressor:
        model = load_model(path)
        estimator = cls(backbone=model.backbone.name, strategy=model.strategy)
        estimator.model_ = model
        return estimator


_TransferEstimator.__init__.__signature__ = inspect.Signature(  # what scikit-learn's get_params reads
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *estimator_parameters()]
)
