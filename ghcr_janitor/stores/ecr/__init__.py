"""Amazon ECR, natively through the ECR API (boto3, the `ecr` extra): `api` holds the boto3 client and
its error mapping, `registry` the store."""
