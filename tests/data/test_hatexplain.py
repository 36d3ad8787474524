"""HateXplain from a tiny official-format dataset.json: majority labels, dropped posts, the 2-of-3 target
rule per category, missing post ids, the train_jsonl mode and offline tokenisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kdfair_data_formats import annotator as a
from kdfair_data_formats import write_hatexplain

from kdfair.data.hatexplain import category_flags, majority_label
from kdfair.data.registry import load_dataset
from kdfair.errors import DataError

POSTS = {
    "p_normal": [a("normal"), a("normal"), a("normal")],
    "p_hate_race": [a("hatespeech", "African"), a("hatespeech", "African", "Arab"), a("offensive", "Arab")],
    "p_off_one_woman": [a("offensive", "Women"), a("offensive"), a("normal")],
    "p_all_differ": [a("hatespeech", "Jewish"), a("offensive", "Jewish"), a("normal")],
    "p_religion_mixed": [a("hatespeech", "Islam"), a("hatespeech", "Jewish"), a("normal", "Women")],
    "p_orientation": [a("offensive", "Homosexual"), a("offensive", "Homosexual", "Men"), a("normal", "Men")],
    "v_normal": [a("normal"), a("normal"), a("offensive", "Refugee")],
    "t_hate": [a("hatespeech", "Refugee", "Other"), a("hatespeech", "Refugee"), a("hatespeech", "Women")],
}
DIVISIONS = {
    "train": [
        "p_normal",
        "p_hate_race",
        "p_off_one_woman",
        "p_all_differ",
        "p_religion_mixed",
        "p_orientation",
    ],
    "val": ["v_normal", "v_missing"],
    "test": ["t_hate"],
}


@pytest.fixture
def root(tmp_path):
    write_hatexplain(tmp_path / "hx", POSTS, DIVISIONS)
    return tmp_path / "hx"


def test_majority_label_and_all_differ():
    assert majority_label(["normal", "offensive", "normal"]) == "normal"
    assert majority_label(["hatespeech", "offensive", "normal"]) is None


def test_category_needs_two_annotators():
    flags = category_flags(POSTS["p_religion_mixed"])  # Islam + Jewish: two annotators name religion
    assert flags == {"race": 0, "religion": 1, "gender": 0, "sexual_orientation": 0, "miscellaneous": 0}
    assert category_flags(POSTS["p_off_one_woman"])["gender"] == 0  # only one names Women
    assert category_flags(POSTS["p_normal"])["miscellaneous"] == 1  # "None" x3 is miscellaneous (SPEC §7)


def test_labels_attributes_and_skips(root):
    data = load_dataset("hatexplain", root, {"max_length": 12})
    train = data.split("train")
    assert train.sample_ids.tolist() == [p for p in DIVISIONS["train"] if p != "p_all_differ"]
    assert train.labels.tolist() == [0, 1, 1, 1, 1]  # toxic = hatespeech or offensive
    assert train.attributes["race"].tolist() == [0, 1, 0, 0, 0]
    assert train.attributes["religion"].tolist() == [0, 0, 0, 1, 0]
    assert train.attributes["gender"].tolist() == [0, 0, 0, 0, 1]  # Men named twice in p_orientation
    assert train.attributes["sexual_orientation"].tolist() == [0, 0, 0, 0, 1]
    assert data.split("test").attributes["miscellaneous"].tolist() == [1]
    skipped = data.info["skipped"]
    assert skipped["train"]["dropped_no_majority"] == 1 and skipped["val"]["missing_posts"] == 1
    assert data.split("val").sample_ids.tolist() == ["v_normal"]
    assert data.class_names == ["normal", "toxic"] and data.modality == "text"


def test_three_class_labels(root):
    data = load_dataset("hatexplain", root, {"label_mode": "three_class"})
    assert data.split("train").labels.tolist() == [1, 0, 2, 0, 2]  # hatespeech 0, normal 1, offensive 2


def test_strict_ids_turns_a_missing_post_into_an_error(root):
    with pytest.raises(DataError, match="v_missing"):
        load_dataset("hatexplain", root, {"strict_ids": True})


def test_wordpiece_tokens_padded_and_cached(root, private_cache):
    data = load_dataset("hatexplain", root, {"max_length": 20})
    ids = data.split("train").inputs
    assert ids.dtype == np.int64 and ids.shape == (5, 20)
    assert data.pad_id == 0 and data.vocab_size > ids.max()
    cls_id = ids[0, 0]
    assert np.all(ids[:, 0] == cls_id) and cls_id != data.pad_id
    lengths = (ids != data.pad_id).sum(1)
    assert lengths.max() < 20  # short posts: padded at the end, never in the middle
    assert all(np.all(row[n:] == data.pad_id) for row, n in zip(ids, lengths, strict=True))
    # "post <id> about things" -> the word "about" has the same id in every post
    about = [set(row.tolist()) for row in ids]
    assert set.intersection(*about) - {data.pad_id, cls_id}
    assert len(list((private_cache / "tokenizers").glob("*.json"))) == 1
    again = load_dataset("hatexplain", root, {"max_length": 20})
    assert np.array_equal(again.split("test").inputs, data.split("test").inputs)


def test_truncation_to_max_length(root):
    data = load_dataset("hatexplain", root, {"max_length": 4})
    ids = data.split("train").inputs
    assert ids.shape == (5, 4) and np.all(ids != data.pad_id)


def test_train_jsonl_mode(root):
    lines = [
        {"post_id": "j1", "majority_label": "normal", "post_tokens": ["hello", "world"]},
        {"post_id": "j2", "majority_label": "offensive", "post_tokens": ["bad", "words"]},
    ]
    (root / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = load_dataset("hatexplain", root, {"train_jsonl": "train.jsonl"})
    train = data.split("train")
    assert train.sample_ids.tolist() == ["j1", "j2"] and train.labels.tolist() == [0, 1]
    assert train.attributes == {} and data.info["skipped"]["train"]["not_in_jsonl"] == 6
    assert len(data.split("test")) == 1
    (root / "train.jsonl").write_text('{"post_id": "j1"}\n')
    with pytest.raises(DataError, match="line 1"):
        load_dataset("hatexplain", root, {"train_jsonl": "train.jsonl"})


def test_file_without_train_posts_asks_for_train_jsonl(tmp_path):
    write_hatexplain(tmp_path, {k: v for k, v in POSTS.items() if k[0] != "p"}, DIVISIONS)
    with pytest.raises(DataError, match="train_jsonl"):
        load_dataset("hatexplain", tmp_path)


def test_missing_files_and_bad_json(tmp_path, root):
    with pytest.raises(DataError, match="hate-alert/HateXplain"):
        load_dataset("hatexplain", tmp_path / "nothing")
    (root / "dataset.json").write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        load_dataset("hatexplain", root)


def _save_local_tokenizer(folder):
    """A tiny WordPiece trained offline on a few words, saved as a transformers tokenizer folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=80, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(["a post about things", "hate and normal posts"], trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    fast.save_pretrained(folder)
    return tok


def test_pretrained_tokenizer_path_gives_the_tokenizers_own_ids(root, tmp_path, private_cache):
    from transformers import AutoTokenizer

    folder = tmp_path / "local_tokenizer"
    raw = _save_local_tokenizer(folder)
    data = load_dataset("hatexplain", root, {"tokenizer_path": str(folder), "max_length": 12})
    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    for split in ("train", "val", "test"):
        texts = [f"post {pid} about things" for pid in data.split(split).sample_ids]
        expected = reference(texts, padding="max_length", truncation=True, max_length=12)["input_ids"]
        assert data.split(split).inputs.tolist() == expected
    # the same ids from the raw `tokenizers` object: [CLS] post <id pieces> about things [SEP], then [PAD]s
    row = data.split("test").inputs[0].tolist()
    unpadded = raw.encode("post t_hate about things").ids
    assert row == unpadded + [raw.token_to_id("[PAD]")] * (12 - len(unpadded))
    assert row[0] == raw.token_to_id("[CLS]") and raw.token_to_id("[SEP]") in row
    assert data.pad_id == raw.token_to_id("[PAD]") == 0 and data.vocab_size == raw.get_vocab_size()
    assert data.info["tokenizer"] == f"pretrained tokenizer {folder}"
    assert not (private_cache / "tokenizers").exists()  # no WordPiece vocabulary was trained


def test_missing_or_empty_tokenizer_path_is_a_clear_data_error(root, tmp_path):
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(DataError) as err:
        load_dataset("hatexplain", root, {"tokenizer_path": str(missing)})
    message = str(err.value)
    assert f"tokenizer_path {missing} is not a folder" in message and "tokenizer.json" in message
    assert "offline" in message and "\n" not in message
    missing.mkdir()
    with pytest.raises(
        DataError, match=f"cannot load a tokenizer from {missing} \\(local files only\\)"
    ) as err:
        load_dataset("hatexplain", root, {"tokenizer_path": str(missing)})
    assert "\n" not in str(err.value)
