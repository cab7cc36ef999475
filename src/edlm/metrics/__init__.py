"""Metrics of models and samples: generative quality, MAUVE, zero-shot perplexity, lm-eval-harness, latency,
energy diagnostics, and the sample files they read."""
