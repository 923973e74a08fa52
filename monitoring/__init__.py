"""Model monitoring: drift (PSI) of served features and scores against a version's baselines."""
