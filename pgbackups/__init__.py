"""Serverless PostgreSQL backups on AWS."""
