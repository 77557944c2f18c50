"""What orderflow sells and at what price, in cents."""

PRICES_CENTS: dict[str, int] = {
    "espresso-beans": 1450,
    "grinder": 8900,
    "moka-pot": 3200,
}
