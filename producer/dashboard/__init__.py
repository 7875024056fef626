"""The live batch dashboard: its routes, the server-sent event feed, thumbnails, static page."""
