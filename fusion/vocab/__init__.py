"""EEVE-style vocabulary expansion: new Korean tokens, resized embeddings, and which rows are new.

``corpus`` reads the text, ``candidates`` finds tokens worth adding, ``spelling`` spells them
with the old tokens as they are used in text, ``embeddings`` resizes and initialises,
``expand`` ties them together, ``rows`` tells later stages (``vocab train``) which embedding
rows are new.
"""
