"""Helpers behind tasks.py: tool preflight and console output. Importable, so tests call them."""
