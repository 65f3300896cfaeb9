"""Datasets: the folder layout, preprocessing of real video, imports, and the synthetic subject."""
