"""Classical (training-free) low-light enhancers, one module each.

Every enhancer maps uint8 images, N x H x W (grayscale) or N x H x W x 3
(RGB), to uint8 images of the same shape and is registered in
``llfer.registry.ENHANCERS`` under its ``name`` by its module (imported by
``llfer.enhance``).  The intensity-only methods (``he``, ``clahe``, ``agc``,
``gain``) work on the HSV V channel of RGB images (:mod:`.common`).
"""
