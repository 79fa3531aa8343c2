"""`python -m ghcr_janitor` runs the CLI."""

from ghcr_janitor.cli.app import main

if __name__ == "__main__":
    main()
