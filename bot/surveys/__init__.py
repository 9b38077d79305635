"""Focus-group surveys: definitions (typed data, loaded from YAML), the answering dialog, staff
commands and verbs, results, export and reminders. Declared once in :mod:`bot.surveys.feature`."""
