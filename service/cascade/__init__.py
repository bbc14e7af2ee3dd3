"""The cheapest-first cascade: the profiles and routing that choose a request's
confidence model, its plan, the stages and the policy between them, and the runner."""
