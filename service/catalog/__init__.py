"""Seed data: model presets, accelerators, providers and prices, each row with its source.

The files are data, not code; :mod:`service.catalog.loader` reads them.
"""
