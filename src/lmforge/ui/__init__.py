"""`lmforge ui`: a local web app for the whole workflow (docs/ui.md)."""
