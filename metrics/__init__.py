"""Metrics: definitions and sets, the LLM layer, judges, embeddings, scoring."""
