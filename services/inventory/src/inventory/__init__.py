"""inventory: what is in stock, and reservations against it. storefront reserves stock
for an order before charging it and releases it when the charge fails. Optimistic
concurrency on one small stock document (its ETag) makes sure concurrent orders never
oversell; each reservation is a key of its own."""
