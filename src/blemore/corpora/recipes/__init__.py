"""One module per corpus recipe; each registers its :class:`~blemore.corpora.base.Recipe` in
:data:`blemore.corpora.base.RECIPES` (loaded on the first lookup)."""
