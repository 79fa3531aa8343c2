"""The only place with effects: apply a plan, with its journal."""
