"""storefront: the public HTTP API. It charges through payments (Dapr service invocation)
and announces each order on the ``orders`` topic (Dapr pub/sub)."""
