"""Shared by producer and workers: settings, jobs, queue, storage, status, models, errors."""
