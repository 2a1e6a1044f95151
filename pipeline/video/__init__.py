"""Video ingestion: safe decode (PyAV), shot splitting, frame sampling with exact timestamps,
token-budgeted frame plans. ``pipeline.sources.video`` turns these into catalog inputs."""
