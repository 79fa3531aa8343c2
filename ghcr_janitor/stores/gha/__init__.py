"""The GitHub Actions cache of one repository (`gha:OWNER/REPO`): REST listing and delete by id."""
