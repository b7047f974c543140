"""The version of the feature rows' layout and rules, stored with every row (``feature_version``):
a row of another version is stale. Its own module: a run that has nothing to compute compares it
without loading the definitions."""

FEATURE_VERSION = 1
