"""Bulletins: staff broadcast a periodic bulletin to subscribers, each in their language.

``document``/``markdown``: the body as typed data and its Markdown subset; ``definition``:
a bulletin and its length rules; ``loader``: YAML files and their validation; ``render``:
what each platform shows.
"""
