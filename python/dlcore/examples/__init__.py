"""Runnable tutorial programs: ``python -m dlcore.examples.<name> [--quick] [--data DIR]``.

Each prints what it learned and how long it took; ``main(argv)`` returns the same
figures as a dict, which the tests check.
"""
