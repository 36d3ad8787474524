"""HateXplain (Mathew et al. 2021) with the paper's binary toxic label and target-category groups (SPEC §7).

Label: the majority of the 3 annotators; posts where all three differ are dropped (counted). Binary mode:
toxic (hatespeech or offensive) = 1, normal = 0; ``three_class`` keeps hatespeech / normal / offensive.
Protected attributes, one binary column per category: a post pertains (1) when at least 2 annotators named a
community of the category. Communities outside the SPEC lists (Disability, Minority, Nonreligious, Indian,
Economic, Bisexual, Asexual) belong to no category.

A post id listed in ``post_id_divisions.json`` but absent from the dataset file is skipped and counted in
``info["missing_posts"]`` (``strict_ids`` makes it an error). With ``train_jsonl`` (lines of ``post_id,
majority_label, post_tokens``) the train split comes from that file instead: majority labels only, so the
train split then carries no protected attributes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from kdfair.data.base import Dataset, DataSplit
from kdfair.data.common import StrictOptions, require_file, require_root, splits_info
from kdfair.data.text import Tokenizer, build_tokenizer
from kdfair.errors import DataError

HINT = "get dataset.json and post_id_divisions.json from https://github.com/hate-alert/HateXplain (Data/)"
SPLITS = ("train", "val", "test")
LABELS_3 = ["hatespeech", "normal", "offensive"]  # the official classes.npy order
CATEGORIES: dict[str, tuple[str, ...]] = {
    "race": ("African", "Arab", "Asian", "Caucasian", "Hispanic"),
    "religion": ("Buddhism", "Christian", "Hindu", "Islam", "Jewish"),
    "gender": ("Men", "Women"),
    "sexual_orientation": ("Heterosexual", "Homosexual", "Gay"),
    "miscellaneous": ("Indigenous", "Refugee", "Immigrant", "Other", "None"),
}


class HatexplainOptions(StrictOptions):
    label_mode: Literal["binary", "three_class"] = "binary"  # binary: toxic vs normal (the paper)
    max_length: int = Field(128, ge=4)  # tokens per post, [CLS] and [SEP] included
    vocab_size: int = Field(30000, ge=100)  # WordPiece vocabulary trained on the train posts
    tokenizer_path: str | None = None  # a local pretrained tokenizer folder (AutoTokenizer, offline)
    dataset_file: str = "dataset.json"
    divisions_file: str = "post_id_divisions.json"
    train_jsonl: str | None = None  # train posts with majority labels only (relative to root or absolute)
    strict_ids: bool = False  # a split id missing from the dataset file is an error instead of a skip
    cache_dir: str | None = None  # where the trained vocabulary is kept


def required_files(options: HatexplainOptions) -> list[str]:
    """The files the loader opens for ``options``: relative to the root, or absolute (the tokenizer folder,
    which is relative to the working directory)."""
    needed = [options.dataset_file, options.divisions_file]
    if options.train_jsonl is not None:
        needed.append(options.train_jsonl)  # relative to root, or absolute
    if options.tokenizer_path is not None:
        needed.append(str(Path(options.tokenizer_path).expanduser().absolute()))
    return needed


def majority_label(labels: list[str]) -> str | None:
    """The label given by at least 2 of the 3 annotators; None when all differ."""
    label, count = Counter(labels).most_common(1)[0]
    return label if count >= 2 else None


def category_flags(annotators: list[dict[str, Any]]) -> dict[str, int]:
    """1 per category where at least 2 annotators named one of its communities (SPEC §7), else 0."""
    flags = {}
    for category, communities in CATEGORIES.items():
        votes = sum(any(t in communities for t in (a.get("target") or [])) for a in annotators)
        flags[category] = int(votes >= 2)
    return flags


def _encode_label(label: str, mode: str) -> int:
    if mode == "three_class":
        return LABELS_3.index(label)
    return int(label in ("hatespeech", "offensive"))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"hatexplain: {path} is not valid JSON: {exc}") from exc


def _annotated_posts(ids: list[str], posts: dict[str, Any], options: HatexplainOptions, counts: dict) -> dict:
    """Texts, labels and category flags of the posts in ``ids`` that have a majority label."""
    rows: dict[str, list] = {"ids": [], "texts": [], "labels": [], **{c: [] for c in CATEGORIES}}
    for post_id in ids:
        post = posts.get(post_id)
        if post is None:
            counts["missing_posts"] += 1
            if options.strict_ids:
                raise DataError(
                    f"hatexplain: post '{post_id}' is in {options.divisions_file} but not in the dataset file"
                )
            continue
        label = majority_label([a["label"] for a in post["annotators"]])
        if label is None:
            counts["dropped_no_majority"] += 1
            continue
        rows["ids"].append(post_id)
        rows["texts"].append(" ".join(post["post_tokens"]))
        rows["labels"].append(_encode_label(label, options.label_mode))
        for category, flag in category_flags(post["annotators"]).items():
            rows[category].append(flag)
    return rows


def _jsonl_posts(path: Path, options: HatexplainOptions, counts: dict) -> dict:
    rows: dict[str, list] = {"ids": [], "texts": [], "labels": []}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            post = json.loads(line)
            label = post["majority_label"]
            rows["texts"].append(" ".join(post["post_tokens"]))
            rows["labels"].append(_encode_label(label, options.label_mode))
            rows["ids"].append(post["post_id"])
        except (json.JSONDecodeError, KeyError, ValueError) as exc:
            raise DataError(
                f"hatexplain: {path} line {number} is not a post with a majority_label: {exc}"
            ) from exc
    counts["train_from_jsonl"] = len(rows["ids"])
    return rows


def _resolve(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def _collect(base: Path, options: HatexplainOptions, counts: dict[str, dict]) -> dict[str, dict]:
    expected = [options.dataset_file, options.divisions_file]
    posts = _load_json(require_file("hatexplain", base / options.dataset_file, expected, HINT))
    divisions = _load_json(require_file("hatexplain", base / options.divisions_file, expected, HINT))
    rows = {}
    for split in SPLITS:
        if split == "train" and options.train_jsonl is not None:
            jsonl = require_file(
                "hatexplain", _resolve(base, options.train_jsonl), [options.train_jsonl], HINT
            )
            rows[split] = _jsonl_posts(jsonl, options, counts[split])
            counts[split]["not_in_jsonl"] = len(set(divisions.get("train", [])) - set(rows[split]["ids"]))
        else:
            rows[split] = _annotated_posts(divisions.get(split, []), posts, options, counts[split])
        if not rows[split]["ids"]:
            raise DataError(
                f"hatexplain: split '{split}' has no posts in {base / options.dataset_file}"
                + (" (pass train_jsonl for a file without train posts)" if split == "train" else "")
            )
    return rows


def load_hatexplain(root: Path | None, options: HatexplainOptions, *, seed: int) -> Dataset:
    """HateXplain train / val / test as padded int64 token ids (N, max_length)."""
    base = require_root("hatexplain", root, [options.dataset_file, options.divisions_file], HINT)
    counts = {s: {"missing_posts": 0, "dropped_no_majority": 0} for s in SPLITS}
    rows = _collect(base, options, counts)
    tokenizer: Tokenizer = build_tokenizer(rows["train"]["texts"], options)
    splits = {}
    for split, r in rows.items():
        splits[split] = DataSplit(
            inputs=tokenizer.encode(r["texts"], options.max_length),
            labels=np.asarray(r["labels"], dtype=np.int64),
            sample_ids=np.asarray(r["ids"]),
            attributes={c: np.asarray(r[c], dtype=np.int64) for c in CATEGORIES if c in r},
        )
    class_names = ["normal", "toxic"] if options.label_mode == "binary" else LABELS_3
    levels = {c: [f"not {c}", c] for c in CATEGORIES}
    info = {
        "skipped": counts,
        "tokenizer": tokenizer.description,
        "splits": splits_info(splits, class_names, levels),
    }
    return Dataset(
        name="hatexplain",
        modality="text",
        num_classes=len(class_names),
        class_names=class_names,
        splits=splits,
        attribute_levels=levels,
        vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
        info=info,
    )
