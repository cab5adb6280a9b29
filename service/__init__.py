"""LLM Training Math: compute, memory, cost and scaling-law estimates for large language models."""
