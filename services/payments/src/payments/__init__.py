"""payments: charges orders. storefront calls it through Dapr service invocation; it is
the main target of fault injection."""
