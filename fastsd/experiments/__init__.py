"""Reproduction studies of Pareek, Du & Oh (arXiv 2407.04600), built on the sweep engine."""
