"""Features of a frozen backbone (thesis Sec. 4.5): computed once, in eval mode, without gradients.

Clean features are the standardised images as they are (the kNN bank, the test set, the linear
probe's default). `LINEAR_EVAL_VIEW` is the optional linear-probe augmentation (`--augment`): a
random resized crop and a horizontal flip, the usual linear-evaluation views (the thesis used
random crops only); with it the training features are recomputed every epoch.
"""
import torch

from deep import augment
from deep.knn import extract_features

FEATURE_BATCH = 512  # images per forward pass
LINEAR_EVAL_VIEW = augment.AugmentConfig(jitter_p=0.0, gray_p=0.0, solarize_p=0.0)


def frozen_features(trained, images: torch.Tensor, mean, std, *, view: augment.AugmentConfig | None = None,
                    generator: torch.Generator | None = None, batch_size: int = FEATURE_BATCH) -> torch.Tensor:
    """Backbone features (N, 8·width) of uint8 `images` through the run's backbone in eval mode.

    `trained` is a `deep.evaluate.runs.TrainedRun`. view=None: clean images; else one random view
    per image drawn from `generator`. The backbone's weights and BatchNorm statistics are untouched.
    """
    if view is None:
        def to_input(batch):
            return augment.normalize(batch, mean, std)
    else:
        if generator is None:
            raise ValueError("augmented features need a seeded generator")

        def to_input(batch):
            return augment.augment(batch, view, generator, mean, std)
    with torch.no_grad():
        return extract_features(trained.backbone, images, to_input, batch_size, trained.autocast,
                                trained.memory_format)
