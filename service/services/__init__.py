"""Use cases between the routers and the core: resolve catalog references, then call the core."""
