"""``mfs bench``: throughput figures measured side by side with the design we replace."""
