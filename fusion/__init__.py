"""Knowledge fusion of heterogeneous causal LMs, and the tiny-model zoo used to test it."""
