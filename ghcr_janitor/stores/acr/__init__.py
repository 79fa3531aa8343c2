"""Azure Container Registry: `NAME.azurecr.io/REPO` through ACR's metadata API (`/acr/v1`)."""
