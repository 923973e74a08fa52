"""Entry of the scheduled materialization job for the platform launcher.

The launcher (`pipelines/container/launch.py`) runs a *file* of its code directory with runpy,
after putting that directory -- which holds the `features` package -- first on `sys.path`:

    python3 _mlops_launch.py features/materialize_entry.py [--start ... --end ... --view ...]

Run directly (`python features/materialize_entry.py`), it puts the directory above `features/`
on `sys.path` itself. Everything else is `features.job.main`.
"""

import sys
from pathlib import Path

_CODE_DIR = str(Path(__file__).resolve().parents[1])
if _CODE_DIR not in sys.path:
    sys.path.insert(0, _CODE_DIR)

from features.job import main  # noqa: E402

sys.exit(main())
