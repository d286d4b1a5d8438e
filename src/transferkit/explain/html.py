"""Explanations as self-contained HTML: inline CSS, figures as base64 PNG (matplotlib's Agg canvas).

Texts are shown as their words highlighted blue (pushed towards the explained class) or red (against it),
images as a heat map over the crop the network saw, audio as an attribution curve under the waveform.
matplotlib is imported when a figure is drawn, so ``import transferkit`` does not pay for it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.backbones.audio import RATE
from transferkit.explain.core import Explanation

FOR, AGAINST = (33, 102, 172), (178, 24, 43)  # blue: towards the explained class; red: away from it
EXPLANATION_STYLE = """
.explanation { border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.explanation .head { color: #444; font-size: 0.92em; margin: 0 0 0.5em 0; }
.explanation .words { line-height: 2.1; }
.explanation .words span { padding: 2px 3px; border-radius: 3px; }
.explanation img { max-width: 100%; height: auto; }
.legend span { padding: 2px 6px; border-radius: 3px; margin-right: 0.6em; }
.warn { color: #b26a00; }
"""
STYLE = (
    """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1000px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
"""
    + EXPLANATION_STYLE
)


def explain_html(explanations: Sequence[Explanation], title: str = "Why the model predicted this") -> str:
    """One self-contained HTML page of ``explanations``."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{explanations_section(explanations)}</body></html>"
    )


def explanations_section(explanations: Sequence[Explanation], truths: Sequence[Any] | None = None) -> str:
    """The legend and one block per explanation: an HTML fragment that :data:`EXPLANATION_STYLE` styles.
    ``truths``, when given, are the true labels shown next to each prediction (the fit report's test examples)."""
    legend = (
        '<p class="legend">'
        f'<span style="background: rgba{(*FOR, 0.6)}">towards the explained class</span>'
        f'<span style="background: rgba{(*AGAINST, 0.6)}">against it</span>'
        "stronger colour: larger attribution (words: share of the largest one)</p>"
    )
    blocks = [_block(e, None if truths is None else truths[i]) for i, e in enumerate(explanations)]
    return legend + "".join(blocks)


def _block(explanation: Explanation, truth: Any) -> str:
    e = explanation
    parts = [f"predicted <b>{html.escape(_label(e.prediction))}</b>"]
    if truth is not None:
        parts.append(f"true {html.escape(_label(truth))}")
    if e.target is not None:
        probability = "" if e.probability is None else f" (probability {e.probability:.3f})"
        parts.append(f"explained: <b>{html.escape(e.target)}</b>{probability}")
    else:
        parts.append(f"explained: the predicted value {e.score:.4g}")
    parts.append(html.escape(e.method))
    if e.delta is not None:
        difference = e.score - (e.baseline_score or 0.0)
        loose = abs(e.delta) > 0.05 * max(abs(difference), 1e-9)
        css = ' class="warn"' if loose else ""
        parts.append(
            f"<span{css}>completeness delta {e.delta:+.4f} of score difference {difference:+.4f} "
            f"({e.steps} steps)</span>"
        )
    else:
        parts.append(f"score {e.score:.4f}")
    source = "" if e.modality == "text" else f"<p class='head'>{html.escape(e.input)}</p>"
    head = f"<p class='head'>{' · '.join(parts)}</p>"
    if e.modality == "text":
        body = _words(e)
    elif e.modality == "image":
        body = _img(_image_figure(e), f"attributions over {e.input}")
    else:
        body = _img(_audio_figure(e), f"attributions over time for {e.input}")
    return f'<div class="explanation">{source}{head}{body}</div>'


def _label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "(no label)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _words(explanation: Explanation) -> str:
    values = np.asarray(explanation.attributions, dtype=float)
    peak = float(np.abs(values).max()) if len(values) else 0.0
    spans = []
    for word, value in zip(explanation.tokens or [], values, strict=True):
        alpha = 0.0 if peak == 0 else round(0.85 * abs(value) / peak, 3)
        color = FOR if value >= 0 else AGAINST
        spans.append(
            f'<span style="background: rgba({color[0]}, {color[1]}, {color[2]}, {alpha})" '
            f'title="{value:+.4f}">{html.escape(word)}</span>'
        )
    return f'<div class="words">{" ".join(spans)}</div>'


def _hex(color: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{channel:02x}" for channel in color)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(figure: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(figure)}">'


def _image_figure(explanation: Explanation) -> Any:
    """The crop the network saw, and the same crop under the attribution heat map."""
    from matplotlib.figure import Figure

    grid = np.asarray(explanation.attributions, dtype=float)
    image = explanation.picture
    height, width = (image.shape[:2]) if image is not None else (grid.shape[0], grid.shape[1])
    figure = Figure(figsize=(7.2, 3.3))
    left, right = figure.subplots(1, 2)
    peak = float(np.abs(grid).max()) or 1.0
    for axes in (left, right):
        if image is not None:
            axes.imshow(image)
        axes.set_axis_off()
    left.set_title("input (as the network sees it)", fontsize=9)
    shown = right.imshow(
        grid, cmap="RdBu", vmin=-peak, vmax=peak, alpha=0.6, interpolation="bilinear",
        extent=(0, width, height, 0),
    )  # fmt: skip
    right.set_title(f"attributions ({explanation.method})", fontsize=9)
    figure.colorbar(shown, ax=right, fraction=0.046)
    return figure


def _audio_figure(explanation: Explanation) -> Any:
    """The waveform, and under it the attribution of each silenced window."""
    from matplotlib.figure import Figure

    samples = explanation.picture
    values = np.asarray(explanation.attributions, dtype=float)
    times = np.asarray(explanation.times or [], dtype=float)
    window = explanation.window or 0.1
    figure = Figure(figsize=(7.5, 3.4))
    top, bottom = figure.subplots(2, 1, sharex=True)
    if samples is not None:
        top.plot(np.arange(len(samples)) / RATE, samples, color="#555", linewidth=0.6)
    top.set_ylabel("waveform", fontsize=8)
    colors = [_hex(FOR if v >= 0 else AGAINST) for v in values]
    bottom.bar(times, values, width=window, align="edge", color=colors)
    bottom.axhline(0, color="#999", linewidth=0.6)
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("score drop when silenced", fontsize=8)
    return figure
