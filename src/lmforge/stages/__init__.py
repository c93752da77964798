"""Training stages: one module per stage with `run(cfg, args, resume) -> metrics`; the stage table
(lmforge.config.stages) names each stage's run and declares what the rest of lmforge derives from it."""
