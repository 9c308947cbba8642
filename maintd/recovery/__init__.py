"""Disaster recovery procedures (the `recover` job's scenarios) and the Redis snapshot placement they share."""
