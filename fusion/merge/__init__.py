"""Parameter-space merging of models that share one architecture (FuseChat stage 2).

``spec`` reads the YAML, ``models`` finds and checks the inputs, ``mergekit_backend`` runs
the mergekit methods, ``varm`` is FuseChat's variance-based merge (mergekit lacks it),
``tensors`` streams tensors in and out, ``run`` ties them together.
"""
