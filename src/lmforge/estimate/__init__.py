"""`lmforge estimate`: memory and time of a training config, per component with its formula, before it runs."""
