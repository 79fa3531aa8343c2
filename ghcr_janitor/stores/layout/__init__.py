"""A local OCI image layout (BuildKit type=local cache dir) and its gc."""
