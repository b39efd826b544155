"""The model server: one FastAPI app per use case, serving ``models:/<model_name>@champion``.

Started by ``mlops-pipeline serve --usecase NAME``. It notices when the ``champion`` alias
moves and swaps models between requests, reads features from the Feast online store through
the use case's feature service (or takes them inline), and appends every prediction to the use
case's prediction log, partitioned by day, which drift monitoring reads.
"""
