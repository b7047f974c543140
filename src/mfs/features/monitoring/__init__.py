"""Feature monitoring: statistics per features run (stats), drift per session against a
reference window (psi, drift), served-vs-final skew (SQL views only, sql/090) and the self-audit
that recomputes sampled symbols from their stored bars (audit). ``after_run`` is what a features
run calls once its rows are written."""
