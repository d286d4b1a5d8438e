"""Experiments above the strategies: ``compare`` (transfer vs from-scratch learning curves), its reports, and
the from-scratch baselines that train a network."""
