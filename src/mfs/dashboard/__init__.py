"""``mfs dashboard``: a Dash + Plotly web app over the store, read through the ``mfs_reader`` role.

Pages: market (freshness of every symbol by session), symbol (candlesticks, features, quality
marks, "as known at"), pipeline (Prefect deployments and the store's run history), features (the
registry and feature monitoring). ``app.create_app`` builds it, ``app.serve`` serves it.
"""
