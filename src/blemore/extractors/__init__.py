"""Feature extractors: a registry of named extractors (see :mod:`blemore.extractors.base`).

Every built-in extractor module is imported here so that it registers itself; the modules
keep heavy imports inside ``load()``.
"""
from blemore.extractors.base import (  # noqa: F401
    ExtractResult,
    Extractor,
    ExtractorConfig,
    create_extractor,
    extractor_names,
    get_extractor_class,
    register_extractor,
)

# Built-in extractor modules are imported below (one line each).
from blemore.extractors import face_mesh  # noqa: F401,E402
from blemore.extractors import face_expression  # noqa: F401,E402
from blemore.extractors import egemaps  # noqa: F401,E402
from blemore.extractors import hf_audio  # noqa: F401,E402
from blemore.extractors import hf_image  # noqa: F401,E402
from blemore.extractors import hf_video  # noqa: F401,E402
