"""Metrics of models and samples: generative quality, real-word fractions, MAUVE, zero-shot perplexity,
lm-eval-harness, latency, energy diagnostics, and the sample files they read."""
