"""Training machinery under the stages: the Trainer subclass (atomic checkpoints), TrainingArguments defaults,
run-directory checks, callbacks (JSONL log, fault injection), metrics and loss plots."""
