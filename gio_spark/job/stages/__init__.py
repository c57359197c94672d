"""The job's stages, one module each, in the order data flows through them."""
