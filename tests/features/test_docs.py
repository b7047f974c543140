"""The documented feature table (docs/features.md) is the spec's table (one source of truth), and
the README's example definitions are real ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mfs.errors import ConfigError
from mfs.features.definitions import definitions_path, markdown_table, resolve
from tests.features.feature_helpers import BUILTIN_SET, FEATURE_NAMES

FEATURES_DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_documented_feature_table_is_generated_from_the_spec():
    text = FEATURES_DOC.read_text()
    match = re.search(r"<!-- features-table:start -->\n(.*?)\n<!-- features-table:end -->", text, re.S)
    assert match, "docs/features.md lacks the features table markers"
    assert match.group(1) == markdown_table(BUILTIN_SET), "docs/features.md table is stale: regenerate it from the spec"
    documented = re.findall(r"^\| `(\w+)` \|", match.group(1), re.M)
    assert documented == FEATURE_NAMES


README = FEATURES_DOC.parents[1] / "README.md"


def test_the_readme_example_definitions_resolve_and_its_error_line_is_the_real_one():
    text = README.read_text()
    section = text[text.index("## Add a feature") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "README: the Add a feature section lacks its YAML example"
    built_in = yaml.safe_load(definitions_path().read_text())["features"]
    added = resolve([*built_in, *yaml.safe_load(block.group(1))])[len(built_in) :]
    assert [d.name for d in added] == ["rsi_7", "kama_30", "close_z60"]
    quoted = re.search(r"\(`(feature rsi_7: params\.timeperoid[^`]*)`\)", section.replace("\n", " "))
    assert quoted, "README: the example error line is missing"
    with pytest.raises(ConfigError) as info:
        resolve([{"name": "rsi_7", "talib": "RSI", "params": {"timeperoid": 7}}])
    assert str(info.value) == quoted.group(1)
