"""The commands beside ``python``: ``trace`` (print every event) and ``list`` (what events exist).

Each module is one command's work, called by ``cli.py`` with the values it parsed.
"""
