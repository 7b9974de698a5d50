"""Reproduction studies of Pareek, Du & Oh (arXiv 2407.04600), built on the sweep engine."""

# the studies are submodules, imported by name (fastsd.experiments.synthetic, ...)
__all__ = ["kernel_sd", "reproduce", "synthetic", "tuning", "uci"]
