"""Benchmark suites (PAPER Tables 1-3): :mod:`.suite` (file format), :mod:`.runner` (resumable runs),
:mod:`.report` (tables, significance, plots). Nothing is imported here, so ``import intentrec.benchmark`` is free.
"""
