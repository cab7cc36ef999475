"""Benchmark drivers: the text8 benchmark (EDLM's Table 1 and Figure 1 at CPU scale) and its report."""
