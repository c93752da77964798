"""Text-to-SQL on Spider-format data: prepare SFT data, predict with a trained model, score by EX and EM.

Modules: `schema` (tables.json), `examples` (question / gold / prediction files), `serialize` (schema text),
`prepare` (SFT dataset + catalogue), `extract` (SQL out of model answers), `predict` (batched generation),
`execution` (sandboxed SQLite runs), `denotation` (result comparison), `spider_sql` (sqlglot -> Spider's
SQL structure), `exact_match` and `hardness` (Spider's published definitions), `evaluate` (the report),
`synth_db` (test databases from a schema alone).
"""
