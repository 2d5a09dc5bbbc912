"""Test-suite wide set-up: makes tests/helpers.py importable from every test directory."""
