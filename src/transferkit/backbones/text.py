"""Transformer text encoders loaded with Hugging Face ``transformers``: mean pooling + L2 normalisation."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone, ProgressCallback
from transferkit.backbones.onnx_runtime import OnnxEncoder, OnnxFrozen, cache_folder
from transferkit.devices import module_device, to_device
from transferkit.errors import BackboneError


def _transformers():
    try:
        import transformers
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise BackboneError("text backbones need the 'text' extra; run: pip install 'transferkit[text]'") from error
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


ONNX_MIN_TEXTS = 256


class TransformerTextBackbone(OnnxFrozen, Backbone):
    """A Hugging Face encoder (BERT-like) used as a sentence encoder.

    Args:
        model: A ``transformers`` encoder whose output has ``last_hidden_state``.
        tokenizer: Its tokenizer.
        name: Registry name, folder or hub id (kept in saved models).
        source: How to re-create it: ``{"registry": name}``, ``{"path": folder}`` or ``{"hub": id}``.
        max_length: Tokens kept per text; longer texts are truncated.
        normalize: L2-normalise pooled embeddings (what sentence-transformers models publish).
        runtime: Frozen encoding engine: "auto" (ONNX Runtime when installed, else PyTorch), "onnx" or "torch".
            Fine-tuning always runs in PyTorch.
    """

    modality = "text"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        source: dict[str, str],
        max_length: int = 128,
        normalize: bool = True,
        runtime: str = "auto",
    ) -> None:
        self._set_runtime(runtime)
        self._model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.max_length = int(max_length)
        self.normalize = normalize
        self.dim = int(model.config.hidden_size)
        self._layers = _find_layers(model)

    def __deepcopy__(self, memo: dict) -> TransformerTextBackbone:
        clone = OnnxFrozen.__deepcopy__(self, memo)
        clone._layers = _find_layers(clone._model)
        return clone

    def hashed_state(self) -> dict[str, torch.Tensor]:
        # The pooler is unused (we mean-pool) and randomly initialised when a folder lacks it.
        return {k: v for k, v in self._model.state_dict().items() if not k.startswith("pooler.")}

    def preprocessing_key(self) -> str:
        return f"mean-{'l2' if self.normalize else 'raw'}-{self.max_length}"

    @property
    def num_blocks(self) -> int:
        return 1 + (len(self._layers) if self._layers is not None else 1)

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        if self._layers is None:  # unknown architecture: one block holding everything
            return list(self._model.parameters()) if index == 1 else []
        if index == 0:
            return list(self._model.embeddings.parameters())
        return list(self._layers[index - 1].parameters())

    def tokenize(self, inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        )

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        mask = batch["attention_mask"]
        if self._layers is None or n_blocks == 0:
            return {**batch, "_start": torch.tensor(0)}
        embed_args = {k: batch[k] for k in ("input_ids", "token_type_ids") if k in batch}
        hidden = self._model.embeddings(**embed_args)
        additive = _additive_mask(mask, hidden.dtype)
        for layer in self._layers[: n_blocks - 1]:
            hidden = _first(layer(hidden, attention_mask=additive))
        return {"hidden": hidden, "attention_mask": mask, "_start": torch.tensor(n_blocks)}

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        mask = state["attention_mask"]
        if "hidden" not in state:
            inputs = {k: v for k, v in state.items() if not k.startswith("_")}
            hidden = self._model(**inputs).last_hidden_state
        else:
            hidden = state["hidden"]
            additive = _additive_mask(mask, hidden.dtype)
            for layer in self._layers[n_blocks - 1 :]:
                hidden = _first(layer(hidden, attention_mask=additive))
        return self._pool(hidden, mask)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    @torch.inference_mode()
    def encode(
        self, inputs: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        texts = list(inputs)
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        # Sorting by length keeps padding (wasted compute) small within each batch.
        token_counts = [
            len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        ]
        order = np.argsort(token_counts, kind="stable")
        self._model.eval()
        device = module_device(self._model)  # a GPU when placed there (--device cuda): no ONNX engine then
        engine = self._engine(self.tokenize(texts[:2]), len(texts))
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in index])
            if engine is None:
                embeddings = self.forward(to_device(batch, device))
            else:
                embeddings = self._pool(engine(batch), batch["attention_mask"])
            output[index] = embeddings.float().cpu().numpy()
            if progress is not None:
                progress(len(index))
        return output

    def _engine(self, example: dict[str, torch.Tensor], n_texts: int) -> OnnxEncoder | None:
        """The ONNX Runtime encoder for the current weights, or None to use PyTorch."""
        build = lambda: OnnxEncoder(self._model, example, cache_folder())  # noqa: E731
        return self._onnx_engine(n_texts, ONNX_MIN_TEXTS, build)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds instead of minutes of retries."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _find_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The list of transformer layers of a BERT-like encoder, or None for other architectures."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, torch.nn.ModuleList) and hasattr(model, "embeddings"):
        return layers
    return None


def load_transformer(
    path_or_id: str, *, name: str | None = None, source: dict[str, str] | None = None, **kwargs: Any
) -> TransformerTextBackbone:
    """Load a local Hugging Face folder or a hub id as a text backbone.

    Raises:
        BackboneError: The folder is not a model, or the hub id cannot be reached (no network).
    """
    transformers = _transformers()
    local = Path(path_or_id).expanduser()
    is_folder = local.is_dir()
    if is_folder and not (local / "config.json").is_file():
        raise BackboneError(
            f"{str(local)!r} is not a Hugging Face model folder (no config.json); "
            "pass a folder made by save_pretrained or a catalog name from `transferkit models`"
        )
    target = str(local) if is_folder else path_or_id
    source = source or ({"path": str(local.resolve())} if is_folder else {"hub": path_or_id})
    loaders = [{"local_files_only": True}]
    if not is_folder and os.environ.get("HF_HUB_OFFLINE") != "1" and _hub_reachable():
        loaders.append({})
    last_error: Exception | None = None
    for options in loaders:
        try:
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                tokenizer = transformers.AutoTokenizer.from_pretrained(target, **options)
                model = transformers.AutoModel.from_pretrained(target, attn_implementation="eager", **options)
            return TransformerTextBackbone(model, tokenizer, name=name or path_or_id, source=source, **kwargs)
        except (OSError, ValueError, KeyError) as error:
            last_error = error
    if is_folder:
        raise BackboneError(f"could not load the model folder {target!r}: {last_error}")
    raise BackboneError(
        f"could not load {path_or_id!r}: it is not a local folder and the Hugging Face hub is unreachable "
        "or has no such model; download it where there is internet (save_pretrained) and pass the folder"
    )


def toy_text_backbone(**kwargs: Any) -> TransformerTextBackbone:
    """A tiny random character-level BERT, for tests and smoke runs (registered as ``toy-text``)."""
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    symbols = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {token: i for i, token in enumerate(special + symbols + [f"##{s}" for s in symbols])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    kwargs.setdefault("max_length", 64)
    kwargs.setdefault("normalize", False)
    return TransformerTextBackbone(model, fast, name="toy-text", source={"registry": "toy-text"}, **kwargs)
