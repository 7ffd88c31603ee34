"""Sources of the course website (``make site``): Sphinx configuration, pages, and the scripts that build it."""
