"""The domain: what a job, a lease and a result are, over the Redis layer.

Turns validated requests into script calls (:mod:`app.store`) and script
replies into documents and lease answers. Knows nothing of Flask requests.
"""
