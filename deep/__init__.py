"""Deep self-supervised training on images (thesis Ch. 4): data, augmentation, models, methods, loop."""
