"""The documented feature table (docs/features.md) is the spec's table (one source of truth)."""

from __future__ import annotations

import re
from pathlib import Path

from mfs.features.spec import FEATURE_NAMES, markdown_table

FEATURES_DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_documented_feature_table_is_generated_from_the_spec():
    text = FEATURES_DOC.read_text()
    match = re.search(r"<!-- features-table:start -->\n(.*?)\n<!-- features-table:end -->", text, re.S)
    assert match, "docs/features.md lacks the features table markers"
    assert match.group(1) == markdown_table(), "docs/features.md table is stale: regenerate it from the spec"
    documented = re.findall(r"^\| `(\w+)` \|", match.group(1), re.M)
    assert documented == FEATURE_NAMES
