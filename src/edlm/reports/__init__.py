"""Reports: JSON and Markdown result files, their provenance, and plots."""
