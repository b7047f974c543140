"""The one-line reports made of an error's message."""

from __future__ import annotations

import pytest
import yaml

from mfs.errors import first_line


def test_the_first_line_of_a_multi_line_message() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load("features: [unclosed")
    assert "\n" in str(caught.value)
    assert first_line(caught.value) == str(caught.value).strip().splitlines()[0].strip()
    server_error = "  ERROR:  relation x does not exist\nLINE 1: SELECT ...\n"
    assert first_line(server_error) == "ERROR:  relation x does not exist"


@pytest.mark.parametrize("message", ["", "  \n ", None])
def test_a_text_without_a_line_gives_the_fallback(message) -> None:
    assert first_line(message) == ""
    assert first_line(message, "ValueError") == "ValueError"


def test_an_exception_without_a_message_gives_its_type_name_unless_told_otherwise() -> None:
    assert first_line(ValueError()) == "ValueError"
    assert first_line(KeyError("")) == "''"  # KeyError quotes its key: that is its message
    assert first_line(ValueError(), "") == ""
