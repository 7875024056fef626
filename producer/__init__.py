"""Producer side: submit and watch batches (API, CLI, local stack); never imports workers."""
