"""The model server: a FastAPI app serving ``models:/churn-classifier@champion``.

Started by ``mlops-pipeline serve``. It notices when the ``champion`` alias moves and swaps
models between requests, reads features from the Feast online store through the
``churn_model_v1`` feature service (or takes them inline), and appends every prediction to a
prediction log partitioned by day, which drift monitoring reads.
"""
