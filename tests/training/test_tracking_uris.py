"""Registry URIs are split in one place (``nbrisk.training.tracking.parse_models_uri``), and library errors are
quoted by their first line (``nbrisk.core.first_line``)."""

from __future__ import annotations

import pytest

from nbrisk.core import first_line
from nbrisk.training.tracking import ModelsUri, parse_models_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/nbrisk@champion", ModelsUri("nbrisk", alias="champion")),
        ("models:/nbrisk/3", ModelsUri("nbrisk", version="3")),
        ("models:/m-0123abcd", ModelsUri("m-0123abcd")),
        ("models:/team.model@cand@x", ModelsUri("team.model", alias="cand@x")),
        ("runs:/abc/model", None),
        ("mlruns/artifacts/model", None),
    ],
)
def test_parse_models_uri(uri, expected):
    assert parse_models_uri(uri) == expected


def test_first_line_quotes_one_bounded_line_or_the_type():
    assert first_line(ValueError("no such model\n  at line 2")) == "no such model"
    assert first_line(RuntimeError("x" * 500)) == "x" * 300
    assert first_line(KeyError()) == "KeyError"
