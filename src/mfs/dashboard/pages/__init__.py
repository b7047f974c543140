"""The dashboard's pages; each module gives ``layout(ctx, query)`` and ``register(app, ctx)``."""
