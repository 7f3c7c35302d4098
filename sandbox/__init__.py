"""A local, stateful Stripe API server in the shape of the pinned SDK (a dev and test tool; see README.md)."""
