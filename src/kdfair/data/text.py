"""Offline tokenisation for text data sets: a WordPiece vocabulary trained on the training texts with HF
``tokenizers`` (kept in the cache), or a local pretrained tokenizer loaded with ``local_files_only=True``.
Encodings are ``[CLS] tokens [SEP]``, truncated and padded to ``max_length`` with ``pad_id``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdfair.data.common import cache_dir, fingerprint
from kdfair.errors import DataError
from kdfair.io import write_text_atomic

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] gets id 0


@dataclass
class Tokenizer:
    """A tokenizer behind one interface: ``encode(texts, max_length) -> int64 (N, max_length)``."""

    backend: Any
    pretrained: bool
    vocab_size: int
    pad_id: int
    description: str

    def encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        if self.pretrained:
            out = self.backend(
                list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
            )
            return np.asarray(out["input_ids"], dtype=np.int64)
        self.backend.enable_truncation(max_length)
        self.backend.enable_padding(pad_id=self.pad_id, pad_token="[PAD]", length=max_length)
        return np.asarray([e.ids for e in self.backend.encode_batch(list(texts))], dtype=np.int64).reshape(
            len(texts), max_length
        )


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> Any:
    """A lower-casing BERT-style WordPiece tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers

    tok = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return tok


def build_tokenizer(train_texts: Sequence[str], options: Any) -> Tokenizer:
    """The tokenizer ``options`` ask for: ``options.tokenizer_path`` (pretrained, offline) or a WordPiece
    vocabulary of ``options.vocab_size`` trained on ``train_texts`` (cached under ``options.cache_dir``)."""
    if options.tokenizer_path is not None:
        return _pretrained(options.tokenizer_path)
    from tokenizers import Tokenizer as HFTokenizer

    digest = hashlib.sha256("\n".join(train_texts).encode("utf-8")).hexdigest()[:16]
    path = (
        cache_dir("tokenizers", options.cache_dir)
        / f"wordpiece_{fingerprint(digest, options.vocab_size)}.json"
    )
    if path.is_file():
        tok = HFTokenizer.from_file(str(path))
    else:
        tok = train_wordpiece(train_texts, options.vocab_size)
        write_text_atomic(path, tok.to_str())
    return Tokenizer(
        backend=tok,
        pretrained=False,
        vocab_size=tok.get_vocab_size(),
        pad_id=tok.token_to_id("[PAD]"),
        description=f"wordpiece trained on {len(train_texts)} train texts ({path})",
    )


PRETRAINED_FILES = "tokenizer.json, or vocab.txt with tokenizer_config.json (a save_pretrained folder)"


def _pretrained(path: str) -> Tokenizer:
    """A local tokenizer folder loaded with ``AutoTokenizer.from_pretrained(local_files_only=True)``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"tokenizer_path {folder} is not a folder (expected {PRETRAINED_FILES}; "
            "tokenizers are loaded offline only, nothing is downloaded)"
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # one line
        raise DataError(f"cannot load a tokenizer from {folder} (local files only): {reason}") from exc
    if tok.pad_token_id is None:
        raise DataError(f"tokenizer at {folder} has no padding token")
    return Tokenizer(tok, True, len(tok), int(tok.pad_token_id), f"pretrained tokenizer {folder}")
