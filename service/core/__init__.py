"""Pure formula core: plain functions over frozen dataclasses.

Nothing in this package imports a web framework, a validation library or a database driver, and
nothing performs I/O, so it can be used as a library on its own (``from service.core import ...``).
"""
