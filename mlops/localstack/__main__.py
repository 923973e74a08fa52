"""`python -m mlops.localstack deploy|plan` (see mlops.localstack.deploy)."""

from mlops.localstack.deploy import main

raise SystemExit(main())
