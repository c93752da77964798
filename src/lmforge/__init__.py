"""lmforge: adapt large language models to a domain (pretraining, SFT, PEFT, alignment, serving).

Importing the package is cheap on purpose: heavy libraries (torch, transformers, datasets) are imported
inside the modules that need them, so `lmforge --help` answers instantly.
"""

__version__ = "0.1.0"
