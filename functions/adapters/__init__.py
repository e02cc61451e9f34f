"""The only code that talks to AWS; it turns botocore errors into the project's own."""
