"""Serverless model operations for scikit-learn models on AWS Lambda."""
