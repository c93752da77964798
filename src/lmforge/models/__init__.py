"""Loading models and tokenizers for training, and building small random ones (`lmforge init-model`)."""
