"""civicbot: a secure two-way dialogue bot for civil society and an accountability mechanism."""

__version__ = "0.1.0"
