"""Text classifiers from transformers, built from config objects only (random init, nothing downloaded):
BERT-Base (``BertConfig()`` defaults: 12 layers, hidden 768, 110M parameters) and DistilBERT
(``DistilBertConfig()`` defaults: 6 layers, dim 768, 67M parameters).

Input: int64 token ids (B, L); the attention mask is ``ids != pad_id`` (pad id 0 by default, as the data
sets pad). The wrapper keeps the transformers ``*ForSequenceClassification`` module as ``net`` (a
transformers-format state_dict loads into it) and calls its parts in order: ``features`` is the vector fed
to the final linear classifier (BERT: the dropped-out tanh-pooled [CLS]; DistilBERT: the dropped-out ReLU
of ``pre_classifier`` on [CLS]); ``maps`` is empty. Small ``num_layers``/``hidden_size``/... are for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.weights import load_pretrained


class BertClassifier(KDModel):
    """``BertForSequenceClassification`` seen through the KDModel interface."""

    def __init__(self, config: Any, pad_id: int) -> None:
        from transformers import BertForSequenceClassification

        super().__init__()
        self.net = BertForSequenceClassification(config)
        self.pad_id = pad_id
        self.num_classes = config.num_labels
        self.feature_dim = config.hidden_size

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        out = self.net.bert(input_ids=x, attention_mask=(x != self.pad_id).long(), return_dict=True)
        features = self.net.dropout(out.pooler_output)
        return ModelOutput(self.net.classifier(features), features, [])


class DistilBertClassifier(KDModel):
    """``DistilBertForSequenceClassification`` seen through the KDModel interface."""

    def __init__(self, config: Any, pad_id: int) -> None:
        from transformers import DistilBertForSequenceClassification

        super().__init__()
        self.net = DistilBertForSequenceClassification(config)
        self.pad_id = pad_id
        self.num_classes = config.num_labels
        self.feature_dim = config.dim

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        out = self.net.distilbert(input_ids=x, attention_mask=(x != self.pad_id).long(), return_dict=True)
        cls = out.last_hidden_state[:, 0]
        features = self.net.dropout(F.relu(self.net.pre_classifier(cls)))
        return ModelOutput(self.net.classifier(features), features, [])


def _overrides(**values: int | None) -> dict[str, int]:
    return {key: value for key, value in values.items() if value is not None}


def _check_heads(name: str, hidden: int, heads: int) -> None:
    if hidden % heads != 0:
        raise ConfigError(f"{name}: hidden_size {hidden} is not a multiple of num_heads {heads}")


def bert_base(
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
    vocab_size: int | None = None,
    num_layers: int | None = None,
    hidden_size: int | None = None,
    num_heads: int | None = None,
    intermediate_size: int | None = None,
    max_length: int | None = None,
    pad_id: int = 0,
) -> KDModel:
    """BERT-Base classifier; unset options keep ``BertConfig()`` defaults (``in_channels``/``image_size``
    are accepted for the common signature and ignored)."""
    from transformers import BertConfig

    config = BertConfig(
        num_labels=num_classes,
        pad_token_id=pad_id,
        **_overrides(
            vocab_size=vocab_size,
            num_hidden_layers=num_layers,
            hidden_size=hidden_size,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
            max_position_embeddings=max_length,
        ),
    )
    _check_heads("bert_base", config.hidden_size, config.num_attention_heads)
    return _finish(BertClassifier(config, pad_id), pretrained)


def distilbert(
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
    vocab_size: int | None = None,
    num_layers: int | None = None,
    hidden_size: int | None = None,
    num_heads: int | None = None,
    intermediate_size: int | None = None,
    max_length: int | None = None,
    pad_id: int = 0,
) -> KDModel:
    """DistilBERT classifier; unset options keep ``DistilBertConfig()`` defaults (``in_channels``/
    ``image_size`` are accepted for the common signature and ignored)."""
    from transformers import DistilBertConfig

    config = DistilBertConfig(
        num_labels=num_classes,
        pad_token_id=pad_id,
        **_overrides(
            vocab_size=vocab_size,
            n_layers=num_layers,
            dim=hidden_size,
            n_heads=num_heads,
            hidden_dim=intermediate_size,
            max_position_embeddings=max_length,
        ),
    )
    _check_heads("distilbert", config.dim, config.n_heads)
    return _finish(DistilBertClassifier(config, pad_id), pretrained)


def _finish(model: KDModel, pretrained: str | Path | None) -> KDModel:
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
