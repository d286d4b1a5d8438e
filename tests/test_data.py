"""The data layer: reading CSV / TSV / JSONL / Parquet, finding columns, inferring the task, splitting, and
one-line DataErrors for every bad input (which never touch the input file)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transferkit.data import (
    infer_task,
    load_inputs,
    load_labeled,
    read_table,
    train_test_indices,
)
from transferkit.errors import DataError

# Commas, quotes, tabs-free non-ASCII text and words pandas would read as missing ("NA", "null") by default.
REVIEWS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "text": [
            'café, "great" food',
            "naïve plot 🙂",
            "NA",
            "null",
            "would not watch again",
            "loved every minute",
        ],
        "label": ["pos", "neg", "neg", "neg", "neg", "pos"],
    }
)


def write(frame: pd.DataFrame, path: Path) -> Path:
    suffix = "".join(path.suffixes)
    if suffix in (".csv", ".csv.gz"):
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(f"no writer for {suffix}")
    return path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes() for path in folder.rglob("*")}


def assert_fails(source: Path, match: str, *, loader=load_labeled, **kwargs) -> DataError:
    """``loader(source)`` raises DataError matching ``match``; nothing in the folder of ``source`` changes."""
    before = snapshot(source.parent)
    with pytest.raises(DataError, match=match) as info:
        loader(source, **kwargs)
    assert snapshot(source.parent) == before
    assert "\n" not in str(info.value)
    return info.value


# --- reading -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.tsv", "reviews.jsonl", "reviews.parquet", "reviews.csv.gz"])
def test_every_format_gives_the_same_texts_and_labels(tmp_path, name):
    path = write(REVIEWS, tmp_path / name)

    data = load_labeled(path)

    assert data.inputs == REVIEWS["text"].tolist()  # "NA" and "null" stay texts, not missing values
    assert data.y == REVIEWS["label"].tolist()
    assert (data.task, data.text_col, data.label_col) == ("classification", "text", "label")
    assert data.source == str(path)
    frame = read_table(path)
    assert list(frame.columns) == ["id", "text", "label"]
    assert len(frame) == len(REVIEWS)


def test_reading_accepts_a_utf8_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\ncaf\xc3\xa9,a\nthe,b\n")

    data = load_labeled(path)

    assert (data.text_col, data.inputs, data.y) == ("text", ["café", "the"], ["a", "b"])


def test_load_inputs_returns_inputs_table_and_column(tmp_path):
    path = write(REVIEWS, tmp_path / "reviews.csv")

    inputs, frame, column = load_inputs(path)

    assert inputs == REVIEWS["text"].tolist()
    assert list(frame.columns) == ["id", "text", "label"]
    assert column == "text"


def test_builtin_afinn_loads_with_its_columns():
    frame = read_table("afinn")
    assert list(frame.columns) == ["text", "valence", "sentiment"]

    data = load_labeled("afinn")
    assert (data.text_col, data.label_col, data.task) == ("text", "sentiment", "classification")
    assert set(data.y) == {"negative", "positive"}
    assert len(data.inputs) == len(frame) == 2476

    valence = load_labeled("afinn", label_col="valence", task="regression")
    assert valence.task == "regression"
    assert all(isinstance(v, float) and -5 <= v <= 5 for v in valence.y)


def test_builtin_spam_assassin_loads_with_its_columns():
    data = load_labeled("spam-assassin")

    assert (data.text_col, data.label_col, data.task) == ("text", "label", "classification")
    assert set(data.y) == {"ham", "spam"}
    assert len(data.inputs) == 5886
    assert all(text.strip() for text in data.inputs)


# --- columns -------------------------------------------------------------------------------------------------


def test_text_and_label_columns_are_found_by_name_ignoring_case():
    frame = pd.DataFrame({"id": [1, 2], "Category": ["ham", "spam"], "Message": ["hi there", "win money"]})

    data = load_labeled(frame)

    assert (data.text_col, data.label_col) == ("Message", "Category")
    assert data.inputs == ["hi there", "win money"]
    assert data.y == ["ham", "spam"]


def test_text_column_without_a_known_name_is_the_one_with_the_longest_strings():
    frame = pd.DataFrame(
        {
            "title": ["ok", "meh", "wow"],
            "notes": ["a long description of the film", "another fairly long note", "the third long note"],
            "label": ["a", "b", "a"],
        }
    )

    assert load_labeled(frame).text_col == "notes"


def test_label_column_without_a_known_name_is_the_only_other_column():
    frame = pd.DataFrame({"words": ["a long sentence here", "another long sentence"], "grade": ["x", "y"]})

    data = load_labeled(frame)

    assert (data.text_col, data.label_col) == ("words", "grade")


def test_explicit_columns_override_detection():
    frame = pd.DataFrame(
        {
            "text": ["t1", "t2", "t3"],
            "label": ["l1", "l2", "l1"],
            "summary": ["short one", "short two", "short three"],
            "topic": ["sport", "news", "news"],
        }
    )

    data = load_labeled(frame, text_col="summary", label_col="topic")

    assert data.inputs == ["short one", "short two", "short three"]
    assert data.y == ["sport", "news", "news"]


def test_two_candidate_label_columns_are_refused():
    frame = pd.DataFrame({"words": ["some text", "more text"], "b": ["x", "y"], "c": ["p", "q"]})

    with pytest.raises(
        DataError, match=r"cannot tell which column of the data holds the labels \(b, c\); pass --label-col"
    ):
        load_labeled(frame)


def test_no_text_column_is_refused():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})

    with pytest.raises(DataError, match=r"found no text column in the data \(columns: x, label\); pass --text-col"):
        load_labeled(frame)


def test_the_same_column_for_texts_and_labels_is_refused():
    with pytest.raises(DataError, match="text and label columns are both 'text'"):
        load_labeled(REVIEWS, text_col="text", label_col="text")


# --- task inference ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["pos", "neg", "pos"], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([1.0, 2.0, 1.0], "classification"),  # whole numbers, few of them: classes
        ([True, False, True], "classification"),
        ([0.5, 1.25, -2.0], "regression"),
        (list(range(40)), "regression"),  # many distinct whole numbers: a quantity, not classes
        ([["a", "b"], ["b"]], "multilabel"),
    ],
)
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_string_labels_are_classification(tmp_path):
    data = load_labeled(write(REVIEWS, tmp_path / "reviews.csv"))

    assert data.task == "classification"
    assert data.y == ["pos", "neg", "neg", "neg", "neg", "pos"]


def test_integer_labels_are_classes_as_strings(tmp_path):
    path = tmp_path / "digits.csv"
    path.write_text("text,label\none,1\nzero,0\nagain one,1\n", encoding="utf-8")

    data = load_labeled(path)

    assert (data.task, data.y) == ("classification", ["1", "0", "1"])


MIXED_LABELS = [1, 3, "cat", "dog", 1, "1", 1.0, "3", "dog", "cat", " 3.0 "]
MIXED_CLASSES = ["1", "3", "cat", "dog", "1", "1", "1", "3", "dog", "cat", "3"]


@pytest.mark.parametrize("name", ["mixed.jsonl", "mixed.parquet", "mixed.csv"])
def test_labels_mixing_numbers_and_words_are_one_class_per_value(tmp_path, name):
    # JSONL keeps ints, floats and strings apart; Parquet and CSV hold them all as strings ("1.0" for the float)
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(len(MIXED_LABELS))], "label": MIXED_LABELS})
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")), encoding="utf-8")
    else:
        write(frame.astype({"label": str}), path)

    data = load_labeled(path)

    assert (data.task, data.y) == ("classification", MIXED_CLASSES)


def test_labels_mixing_numbers_and_words_in_a_frame_and_in_multilabel_cells():
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(len(MIXED_LABELS))], "label": MIXED_LABELS})

    assert load_labeled(frame).y == MIXED_CLASSES
    tags = pd.DataFrame({"text": ["a", "b", "c"], "tags": ["1.0|cat", "1|dog", "cat|2"]})
    assert load_labeled(tags, task="multilabel").y == [["1", "cat"], ["1", "dog"], ["2", "cat"]]


def test_decimal_labels_that_are_not_whole_numbers_keep_their_spelling():
    frame = pd.DataFrame({"text": list("abcdef"), "label": ["1.5", "1.5", "v1.0", "v1.0", "10", "10"]})

    assert load_labeled(frame).y == ["1.5", "1.5", "v1.0", "v1.0", "10", "10"]


def test_a_class_with_one_example_is_named_in_a_warning(capsys):
    labels = ["ham"] * 4 + ["spam"] * 4 + ["sapm", "[promo]"]  # a typo and a name rich would read as markup
    frame = pd.DataFrame({"text": [f"mail {i}" for i in range(len(labels))], "label": labels})

    data = load_labeled(frame, name="mail.csv")

    assert data.y == labels  # a warning, not an error: the data are still read
    warning = " ".join(capsys.readouterr().err.split())
    assert warning.startswith("warning: mail.csv: 2 classes have a single example in column 'label'")
    assert "('[promo]', 'sapm')" in warning
    assert "add examples or drop those rows" in warning


def test_many_one_example_classes_are_counted_not_all_named(capsys):
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(14)], "label": ["a", "a", *map(str, range(10, 22))]})

    load_labeled(frame)

    warning = " ".join(capsys.readouterr().err.split())
    assert "12 classes have a single example" in warning
    assert "('10', '11', '12', '13', '14', ... (12 in all))" in warning


def test_no_warning_when_every_class_has_two_examples_or_when_evaluating(capsys):
    load_labeled(REVIEWS)
    load_labeled(pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", "y"]}), min_classes=1)

    assert capsys.readouterr().err == ""


def test_non_integer_float_labels_are_regression(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("text,score\nfine,0.5\ngood,1.25\nbad,-2\n", encoding="utf-8")

    data = load_labeled(path)

    assert (data.task, data.label_col, data.y) == ("regression", "score", [0.5, 1.25, -2.0])


def test_json_lists_in_jsonl_are_multilabel(tmp_path):
    path = tmp_path / "tags.jsonl"
    rows = [("good cheap", ["price", "quality"]), ("slow", ["delivery"]), ("broken", ["quality", "delivery"])]
    path.write_text("".join(json.dumps({"text": t, "tags": tags}) + "\n" for t, tags in rows), encoding="utf-8")

    data = load_labeled(path)

    assert (data.task, data.label_col) == ("multilabel", "tags")
    assert data.y == [["price", "quality"], ["delivery"], ["delivery", "quality"]]


def test_separated_strings_with_task_multilabel_are_split(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text('text,tags\ngood cheap,price|quality\nslow,delivery\nbroken,"quality | delivery"\n', "utf-8")

    data = load_labeled(path, task="multilabel")

    assert data.task == "multilabel"
    assert data.y == [["price", "quality"], ["delivery"], ["delivery", "quality"]]


def test_another_label_separator_and_json_list_strings(tmp_path):
    frame = pd.DataFrame({"text": ["a b", "c", "d"], "tags": ["x;y", "y", '["x", "z"]']})

    data = load_labeled(frame, task="multilabel", label_sep=";")

    assert data.y == [["x", "y"], ["y"], ["x", "z"]]


# --- splitting -----------------------------------------------------------------------------------------------

LABELS = ["a"] * 10 + ["b"] * 6 + ["c"] * 4


def test_split_is_stratified_so_every_class_is_on_both_sides():
    for seed in range(5):
        train, test = train_test_indices(LABELS, test_size=0.25, task="classification", seed=seed)

        assert {LABELS[i] for i in train} == {LABELS[i] for i in test} == {"a", "b", "c"}
        # 5 of 20 held out: each class in proportion to its size (10 / 6 / 4 -> 2.5 / 1.5 / 1), give or take one
        held = [LABELS[i] for i in test]
        for label, size in (("a", 10), ("b", 6), ("c", 4)):
            assert abs(held.count(label) - size * 5 / 20) < 1


def test_split_is_seeded():
    first = train_test_indices(LABELS, test_size=0.25, task="classification", seed=3)
    again = train_test_indices(LABELS, test_size=0.25, task="classification", seed=3)
    other = train_test_indices(LABELS, test_size=0.25, task="classification", seed=4)

    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (LABELS, "classification"),
        (["a"] * 9 + ["b"], "classification"),  # a class with one example: plain seeded shuffle
        ([float(i) / 3 for i in range(23)], "regression"),
        ([["x"], ["y"], ["x", "y"]] * 5, "multilabel"),
    ],
)
def test_split_is_disjoint_and_covers_every_row(y, task):
    train, test = train_test_indices(y, test_size=0.2, task=task, seed=0)

    assert len(test) == round(len(y) * 0.2)
    assert not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(len(y)))


# --- bad inputs: one-line DataError, input untouched ---------------------------------------------------------


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "reviews-2024.csv"

    assert_fails(path, match=rf"data file '{re.escape(str(path))}' does not exist")
    assert_fails(path, match="reviews-2024.csv' does not exist", loader=load_inputs)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    assert_fails(path, match=r"empty.csv' is empty; it needs a header row")
    assert_fails(path, match=r"empty.csv' is empty", loader=load_inputs)


def test_header_without_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n", encoding="utf-8")

    assert_fails(path, match="header.csv' has no rows")


@pytest.mark.parametrize("option", ["text_col", "label_col"])
def test_unknown_column_lists_the_real_columns(tmp_path, option):
    path = write(REVIEWS, tmp_path / "reviews.csv")

    assert_fails(
        path, match=r"column 'body' is not in .*reviews.csv; its columns are: id, text, label", **{option: "body"}
    )


def test_unknown_text_column_when_predicting(tmp_path):
    path = write(REVIEWS, tmp_path / "reviews.csv")

    assert_fails(
        path, match="column 'body' is not in .*its columns are: id, text, label", loader=load_inputs, text_col="body"
    )


def test_single_class(tmp_path):
    path = write(REVIEWS.assign(label="spam"), tmp_path / "spam-only.csv")

    assert_fails(path, match=r"column 'label' has a single class \('spam'\); classification needs at least two")


def test_missing_labels_name_the_rows(tmp_path):
    path = write(REVIEWS.assign(label=["pos", None, "neg", "pos", np.nan, "neg"]), tmp_path / "holes.csv")

    assert_fails(path, match=r"holes.csv: 2 rows \(2, 5\) have no label in column 'label'")


def test_blank_labels_name_the_rows(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("text,label\na,x\nb,   \nc,y\n", encoding="utf-8")

    assert_fails(path, match=r"blank.csv: 1 row \(2\) has no label in column 'label'")


def test_nan_labels_in_a_frame_name_the_rows():
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [1.0, np.nan, 2.0, np.nan]})

    with pytest.raises(DataError, match=r"the data: 2 rows \(2, 4\) have no label in column 'label'"):
        load_labeled(frame)


def test_null_labels_in_jsonl_name_the_rows(tmp_path):
    path = tmp_path / "nulls.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n{"text": "c", "label": "y"}\n', "utf-8")

    assert_fails(path, match=r"nulls.jsonl: 1 row \(2\) has no label in column 'label'")


@pytest.mark.parametrize("dtype", ["Int64", "string"])
def test_missing_labels_in_nullable_parquet_columns_name_the_rows(tmp_path, dtype):
    values = [1, None, 2, 1] if dtype == "Int64" else ["x", None, "y", "x"]
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": pd.array(values, dtype=dtype)})
    path = write(frame, tmp_path / "nullable.parquet")

    assert_fails(path, match=r"nullable.parquet: 1 row \(2\) has no label in column 'label'")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_non_utf8_text_names_the_line(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    rows = [("hello", "a"), ("world", "b"), ("caf\xe9 au lait", "a"), ("tea", "b")]
    if suffix == ".jsonl":  # no header line: one more row puts the latin-1 one on line 4 as well
        rows.insert(0, ("first", "b"))
        lines = [json.dumps({"text": t, "label": y}, ensure_ascii=False) for t, y in rows]
    else:
        sep = "," if suffix == ".csv" else "\t"
        lines = [f"text{sep}label"] + [f"{t}{sep}{y}" for t, y in rows]
    assert lines[3].startswith(("caf", '{"text": "caf'))
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))

    assert_fails(path, match=r"latin1\.\w+ line 4 is not valid UTF-8 \(byte 0xe9\); re-save the file as UTF-8")
    assert_fails(path, match="line 4 is not valid UTF-8", loader=load_inputs)


def test_non_utf8_text_in_a_compressed_file(tmp_path):
    path = tmp_path / "latin1.csv.gz"
    path.write_bytes(gzip.compress("text,label\ncaf\xe9,a\nthe,b\n".encode("latin-1")))

    assert_fails(path, match="latin1.csv.gz' is not valid UTF-8")


def test_empty_texts_name_the_rows(tmp_path):
    path = tmp_path / "blank-texts.csv"
    path.write_text('text,label\nfine,a\n"   ",b\nok,a\n,b\ngood,b\n', encoding="utf-8")

    assert_fails(path, match=r"blank-texts.csv: 2 rows \(2, 4\) have an empty text in column 'text'")
    assert_fails(path, match=r"2 rows \(2, 4\) have an empty text", loader=load_inputs)


def test_many_bad_rows_are_abbreviated():
    frame = pd.DataFrame({"text": [""] * 7 + ["x"], "label": ["a", "b"] * 4})

    with pytest.raises(DataError, match=r"7 rows \(1, 2, 3, 4, 5, \.\.\.\) have an empty text"):
        load_labeled(frame)


@pytest.mark.parametrize("name", ["reviews.xlsx", "reviews"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("text,label\na,b\n", encoding="utf-8")

    assert_fails(path, match=r"has an unknown format; use one of \.csv, .*\.parquet")


def test_folder_instead_of_a_file(tmp_path):
    path = tmp_path / "reviews.csv"
    path.mkdir()
    (path / "part-0.csv").write_text("text,label\na,b\n", encoding="utf-8")

    assert_fails(path, match="reviews.csv' is a folder without images.*or pass a CSV/TSV/JSONL/Parquet file")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("ragged.csv", b"text,label\na,b\nc,d,e,f\n", "could not read '.*ragged.csv' as CSV: .*line 3"),
        ("broken.jsonl", b'{"text": "a", "label": "x"}\nnot json\n', "could not read '.*broken.jsonl' as JSONL"),
        ("broken.parquet", b"not a parquet file", "could not read '.*broken.parquet' as PARQUET"),
    ],
)
def test_malformed_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)

    assert_fails(path, match=match)


def test_unknown_task(tmp_path):
    path = write(REVIEWS, tmp_path / "reviews.csv")

    assert_fails(
        path, match="unknown task 'ranking'; choose one of: classification, multilabel, regression", task="ranking"
    )


def test_regression_on_words_names_the_rows(tmp_path):
    path = write(REVIEWS, tmp_path / "reviews.csv")

    assert_fails(path, match=r"6 rows \(1, 2, 3, 4, 5, \.\.\.\) have a non-numeric 'label'", task="regression")


def test_multilabel_with_a_single_label(tmp_path):
    path = write(REVIEWS.assign(label="pos"), tmp_path / "one-tag.csv")

    assert_fails(path, match="column 'label' names fewer than two labels", task="multilabel")


@pytest.mark.parametrize(
    ("name", "size", "classes"),
    [("sotu-party", 3000, {"democratic", "republican"}), ("first-names", 8003, {"female", "male"})],
)
def test_builtin_ranking_sets_load_balanced_enough_and_without_duplicates(name, size, classes):
    data = load_labeled(name)
    assert (data.task, len(data.inputs), set(data.y)) == ("classification", size, classes)
    assert len(set(data.inputs)) == size
    assert min(data.y.count(c) for c in classes) > size / 3
