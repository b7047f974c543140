"""The README's feature table is the spec's table (one source of truth)."""

from __future__ import annotations

import re
from pathlib import Path

from mfs.features.spec import FEATURE_NAMES, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_feature_table_is_generated_from_the_spec():
    text = README.read_text()
    match = re.search(r"<!-- features-table:start -->\n(.*?)\n<!-- features-table:end -->", text, re.S)
    assert match, "README lacks the features table markers"
    assert match.group(1) == markdown_table(), "README table is stale: regenerate it from the spec"
    documented = re.findall(r"^\| `(\w+)` \|", match.group(1), re.M)
    assert documented == FEATURE_NAMES
