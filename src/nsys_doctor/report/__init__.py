"""Renderers: one module per output format. They know nothing about SQLite."""
