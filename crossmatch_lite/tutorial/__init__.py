"""The tutorial layer: notebook set-up, figures, tables, probes, the book. It imports the
core; the core never imports it (tests/test_layout.py)."""
