"""Cold-start evaluation: splits, metrics, the harness and reports."""
