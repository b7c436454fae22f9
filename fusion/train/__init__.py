"""Continual training of the target on the fused objective, on DeepSpeed."""
