"""Online RL building blocks for the ppo and grpo stages: rollouts, rewards, advantages, losses and trainers.

The pure pieces (losses.py, advantages.py, logprobs.py) work on tensors only and are tested against closed
forms; rollout.py samples with the training template's prompt ids and stop ids; rewards.py combines reward
sources (reward model, Python callables, AI judge); trainer.py, grpo.py and ppo.py are LmforgeTrainer subclasses.
"""
