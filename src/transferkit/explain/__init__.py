"""Explanations of single predictions: which words, image regions or moments of a clip made the model decide.

``model.explain(inputs)`` (or :func:`explain`) gives one :class:`Explanation` per input; :func:`explain_html`
renders them as one self-contained page (highlighted words, heat maps over images, curves under waveforms).
"""

from transferkit.explain.core import ExplainError, Explanation
from transferkit.explain.html import EXPLANATION_STYLE, explain_html, explanations_section
from transferkit.explain.predictions import explain, explain_examples

__all__ = [
    "EXPLANATION_STYLE",
    "ExplainError",
    "Explanation",
    "explain",
    "explain_examples",
    "explain_html",
    "explanations_section",
]
