"""Credentials (flags, env, docker config, helpers) and the registry auth flow."""
