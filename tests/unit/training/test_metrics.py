"""Token accuracy is scored on shifted, trained positions; perplexity is exp(eval loss)."""

from __future__ import annotations

import math

import numpy as np
import torch
from transformers import EvalPrediction

from lmforge.training.token_metrics import add_perplexity, argmax_logits, token_accuracy


def test_argmax_keeps_ids_only():
    logits = torch.tensor([[[0.1, 2.0, 0.3], [5.0, 0.0, 0.0]]])
    assert argmax_logits(logits, None).tolist() == [[1, 0]]


def test_token_accuracy_scores_prediction_t_against_label_t_plus_1_on_trained_tokens():
    predictions = np.array([[7, 8, 9, 4, -100]])  # prediction at t is for the token at t + 1
    labels = np.array([[-100, 7, 0, 9, -100]])  # position 2 wrong (8 vs 0), position 4 masked
    assert token_accuracy(EvalPrediction(predictions, labels))["token_accuracy"] == 2 / 3


def test_perplexity_is_exp_of_eval_loss():
    assert add_perplexity({"eval_loss": 2.0})["eval_perplexity"] == math.exp(2.0)
    assert add_perplexity({"eval_loss": 1e6})["eval_perplexity"] == float("inf")
