"""Entry of the platform's training-set step, staged as `_mlops_training_set.py`.

The launcher runs it from the processing code directory, where the bundle's own files live; the
platform's modules are staged beside them under `_mlops_platform/` and put first on `sys.path`,
so a bundle with its own `features` or `pipelines` package cannot shadow them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_mlops_platform"))

from features.training_set import main  # noqa: E402

sys.exit(main())
