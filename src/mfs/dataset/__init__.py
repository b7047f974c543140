"""Point-in-time datasets: per entity (symbol, at), the feature (or bar) row version the SQL
functions ``features_asof`` / ``bars_asof`` return, for many entities at once — read in batches
of symbols with one binary COPY of their versions each, chosen in numpy — as a DataFrame or a
Parquet file. See docs (point in time) and sql/functions/asof.sql, the reference semantics.
And what a live model polls: ``latest_features``, every symbol's newest row (mfs.dataset.latest)."""

from mfs.dataset.api import bars_asof, features_asof
from mfs.dataset.files import DatasetSummary, NoMatchError, read_entities, write_dataset
from mfs.dataset.latest import latest_features
from mfs.dataset.request import DatasetInputError

__all__ = [
    "DatasetInputError",
    "DatasetSummary",
    "NoMatchError",
    "bars_asof",
    "features_asof",
    "latest_features",
    "read_entities",
    "write_dataset",
]
