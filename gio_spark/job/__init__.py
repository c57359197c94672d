"""The Spark job: read -> embed -> quantize -> select -> explode -> write."""
