"""How a column with more distinct values than categories can hold is profiled: short phrases
(product names, hazards, countries typed by hand) are read as words; one-word codes that are
mostly different from row to row are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.data.profiling import MAX_CATEGORIES, profile_column


def test_many_distinct_short_phrases_are_read_as_words():
    rng = np.random.default_rng(1)
    nouns = [f"item{i}" for i in range(400)]
    phrases = [
        f"{rng.choice(['dried', 'frozen', 'fresh'])} {rng.choice(nouns)}" for _ in range(6_000)
    ]
    column = profile_column(pd.Series(phrases), "PRODUCT")
    assert pd.Series(phrases).nunique() > MAX_CATEGORIES
    assert column.kind == "text"
    assert "too many for categories, read as words" in column.note


def test_many_distinct_one_word_codes_are_left_out_with_the_reason():
    codes = pd.Series([f"X{i:05d}" for i in range(3_000)] * 2)  # 50% distinct, one word each
    column = profile_column(codes, "reference")
    assert column.kind == "left out"
    assert column.note == "3,000 distinct one-word values: codes, too many for categories"


def test_a_few_hundred_values_stay_categories():
    values = pd.Series([f"country {i % 300}" for i in range(3_000)])
    assert profile_column(values, "origin").kind == "categorical"
