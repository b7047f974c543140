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


@pytest.mark.parametrize("message", [ValueError(), "", "  \n ", None])
def test_a_message_without_text_gives_the_fallback(message) -> None:
    assert first_line(message) == ""
    assert first_line(message, "ValueError") == "ValueError"
