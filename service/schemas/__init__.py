"""Request and response models: the only place JSON shapes are defined."""
