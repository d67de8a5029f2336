"""Datasets: the embedded synthetic set, the real benchmarks in their official layouts, and the
weak-supervision views (same-category pairs and triplets) used for training.

Taught in notebook 00 (setup and data).
"""
