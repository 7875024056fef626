"""Producer side: submit batches and watch them (Python API, CLI, local stack). Never imports workers."""
