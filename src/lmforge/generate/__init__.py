"""Generate training data with a model: Self-Instruct, Self-QA and Self-KG (`lmforge generate`)."""
