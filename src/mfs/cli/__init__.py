"""The ``mfs`` command line."""
