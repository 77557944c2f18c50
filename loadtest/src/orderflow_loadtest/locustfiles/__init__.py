"""One locustfile per scenario: each imports the shopper and its one load shape."""
