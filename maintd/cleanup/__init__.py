"""Cleanup: pure glob matching and planning (patterns, plan) and fd-based scanning and removal (tree)."""
