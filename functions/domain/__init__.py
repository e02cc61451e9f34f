"""Pure domain logic: no boto3, no Powertools, no environment, no files."""
