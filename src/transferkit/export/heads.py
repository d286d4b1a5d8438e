"""The part of an exported graph after the backbone: head, temperature, probabilities; and the joining of a head
graph to a backbone that is an ONNX file already."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.onnx_runtime import export as export_module


class Outputs(torch.nn.Module):
    """Scores -> what the model returns, as :meth:`transferkit.model.TransferModel.proba_from_scores` and
    ``predict`` compute it: softmax / sigmoid of ``scores / temperature`` (a single binary logit becomes two
    columns), or for regression the scores de-standardised (``scores * scale + mean``)."""

    def __init__(self, task: str, temperature: float, mean: Any = None, scale: Any = None) -> None:
        super().__init__()
        self.task, self.temperature = task, float(temperature)
        if task == "regression":
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(1, -1))
            self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)).reshape(1, -1))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            values = scores * self.scale + self.mean
            return values[:, 0] if values.shape[1] == 1 else values
        scores = scores / self.temperature
        if self.task == "multilabel":
            return torch.sigmoid(scores)
        if scores.shape[1] == 1:
            positive = torch.sigmoid(scores)
            return torch.cat([1.0 - positive, positive], dim=1)
        return torch.softmax(scores, dim=1)


def outputs_module(model: Any) -> Outputs:
    target = model.target
    if model.task == "regression":
        return Outputs("regression", 1.0, target.mean, target.scale)
    return Outputs(model.task, model.temperature)


class _HeadOnly(torch.nn.Module):
    def __init__(self, head: torch.nn.Module, outputs: Outputs) -> None:
        super().__init__()
        self.head, self.outputs = head, outputs

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.outputs(self.head(features))


def merge_onnx_backbone(backbone: Any, model: Any, path: Path) -> None:
    """One graph: the backbone's ONNX file up to its feature tensor, pooled as the backbone pools it
    (mean over the spatial axes of a (n, c, h, w) map, else flattened), then the head graph."""
    import onnx
    from onnx import compose, helper

    graph = onnx.load(str(backbone._path))
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    probe = backbone._session.run([backbone._output], {backbone._input: backbone.pixels([np.zeros((8, 8), np.uint8)])})
    features = "tk_features"
    if probe[0].ndim == 4:
        if opset >= 18:
            axes = helper.make_tensor("tk_pool_axes", onnx.TensorProto.INT64, [2], [2, 3])
            graph.graph.initializer.append(axes)
            node = helper.make_node("ReduceMean", [backbone._output, "tk_pool_axes"], [features], keepdims=0)
        else:
            node = helper.make_node("ReduceMean", [backbone._output], [features], axes=[2, 3], keepdims=0)
    else:
        node = helper.make_node("Flatten", [backbone._output], [features], axis=1)
    graph.graph.node.append(node)
    del graph.graph.output[:]
    graph.graph.output.append(helper.make_tensor_value_info(features, onnx.TensorProto.FLOAT, ["batch", backbone.dim]))
    graph = onnx.utils.Extractor(graph).extract_model([backbone._input], [features])
    head_file = path.with_name(path.stem + ".head.onnx")
    head = model.head.to_torch() if model.head.kind == "linear" else model.head.network
    output = "prediction" if model.task == "regression" else "probabilities"
    module = _HeadOnly(head, outputs_module(model)).eval()
    example = torch.zeros(2, backbone.dim)
    axes = {"features": {0: "batch"}, output: {0: "batch"}}
    export_module(module, (example,), ["features"], axes, head_file, output=output, opset=opset)
    head_graph = onnx.load(str(head_file))
    head_file.unlink()
    head_graph.ir_version = graph.ir_version
    merged = compose.merge_models(graph, head_graph, io_map=[(features, "features")], prefix2="head/")
    unique = {(o.domain, o.version): o for o in merged.opset_import}  # merging lists the shared opset twice
    del merged.opset_import[:]
    merged.opset_import.extend(unique.values())
    onnx.checker.check_model(merged)
    onnx.save(merged, str(path))
