"""Libra's front doors: the `libra` command line (`libra.cli`).

The library itself lives in the `traces`, `metrics`, `autolibra` and `pipa`
packages; this package only wires them to a terminal.
"""

__version__ = "0.1.0"
