"""Test and benchmark support: reference implementations, fuzzers, synthetic generators, the layer checker.

``gfm.testing`` may import any part of gfm; nothing in the library imports it (see
:mod:`gfm.testing.architecture`, which enforces that rule with the rest of the layer order).
"""
