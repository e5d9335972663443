"""The ports' AWS implementations: DynamoDB, S3, Secrets Manager, EventBridge, Lambda."""
