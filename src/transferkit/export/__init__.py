"""Ship a model: one ONNX graph from raw inputs to probabilities (optionally int8), and the runtime that runs it.

``graph`` writes exported folders (needs torch); ``runtime`` runs them with numpy, tokenizers, Pillow and ONNX
Runtime only. This file imports neither, so the runtime loads without torch.
"""
