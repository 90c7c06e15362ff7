"""Data layer: loaders per source format, the dataset registry, samplers and the corpus cache."""
