"""GPU worker side: the Celery task and the image pipeline, one module per stage."""
