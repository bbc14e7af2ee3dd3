"""Evaluation: dataset loaders and graders, held-out metrics, the HTML report."""
