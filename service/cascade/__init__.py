"""The cheapest-first cascade: stages, the policy between them, and the runner."""
