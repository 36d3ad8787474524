"""Models: the :class:`~kdfair.models.base.KDModel` interface and the registry
(:data:`kdfair.models.registry.MODELS`, :func:`kdfair.models.registry.build_model`)."""
