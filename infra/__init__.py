"""Infrastructure shared by the producer and the workers: settings, jobs, queue, storage, status, models."""
