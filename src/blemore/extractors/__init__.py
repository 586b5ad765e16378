"""Feature extractors: a registry of named extractors (see :mod:`blemore.extractors.base`).

The built-in extractor modules are listed in one place,
:data:`blemore.extractors.base.BUILTIN_EXTRACTORS`; the registry imports them on its first
lookup, so nothing needs importing here. To add a built-in extractor, write a module in this
package that decorates its class with :func:`register_extractor` (heavy imports inside
``load()``), and add the module's dotted name to ``BUILTIN_EXTRACTORS``.
"""
from blemore.extractors.base import (  # noqa: F401
    BUILTIN_EXTRACTORS,
    EXTRACTORS,
    ExtractResult,
    Extractor,
    ExtractorConfig,
    create_extractor,
    extractor_names,
    get_extractor_class,
    register_extractor,
)
