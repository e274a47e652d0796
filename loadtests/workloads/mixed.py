"""Everything the shop serves, weighted like a day's traffic: "light every panel".

Reads dominate (product pages, category lists, profiles, the catalogue
overview), with signed-in customers opening their dashboard, placing and
looking at orders, and paying them. Between them these routes reach every
dependency of the app:

- Postgres or SQLite: every route (through the `postgres` link with `lab up`);
- Redis: `/catalog/stats` (cache-aside; 503 without REDIS_URL);
- the payment provider: `/orders/{order_id}/pay` (through the `upstream` link,
  retries and circuit breaker; 503 without UPSTREAM_URL);
- `/users/{user_id}/dashboard` needs PostgreSQL (it aggregates with ARRAY()):
  on the embedded SQLite it fails, so this workload wants `lab up` to be useful.

Id ranges follow the seed (target_app/seed.py): LAB_SEED_ROWS products, a
tenth as many users, a fifth as many orders. Requests are named by route so
Locust's table lines up with the app's `route` label.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Shopper"]

PRODUCTS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")), 100)
USERS_IN_DB = max(PRODUCTS // 10, 10)
ORDERS = max(PRODUCTS // 5, 10)
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"]


class Shopper(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    # A payment may take the provider's slow answers plus retries (upstream
    # scenarios): Locust must wait longer than the app's own budgets.
    network_timeout = 30.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.rnd = random.Random(self.session_id)
        self.user_id = self.rnd.randint(1, USERS_IN_DB)

    # --- browsing -----------------------------------------------------------

    @task(10)
    def product_page(self) -> None:
        currency = self.rnd.choice(["USD", "USD", "EUR", "GBP"])
        self.client.get(
            f"/products/{self.rnd.randint(1, PRODUCTS)}?currency={currency}",
            headers={"X-Session-Id": self.session_id},
            name="/products/{product_id}",
        )

    @task(4)
    def browse_category(self) -> None:
        category = self.rnd.choice(CATEGORIES)
        after = self.rnd.randint(0, PRODUCTS - 100)
        self.client.get(
            f"/products?category={category}&after_id={after}&limit=20", name="/products"
        )

    @task(2)
    def catalog_stats(self) -> None:
        self.client.get("/catalog/stats", name="/catalog/stats")

    # --- signed in ----------------------------------------------------------

    @task(2)
    def user_profile(self) -> None:
        self.client.get(f"/users/{self.user_id}", name="/users/{user_id}")

    @task(2)
    def user_dashboard(self) -> None:
        self.client.get(f"/users/{self.user_id}/dashboard", name="/users/{user_id}/dashboard")

    @task(1)
    def view_order(self) -> None:
        self.client.get(f"/orders/{self.rnd.randint(1, ORDERS)}", name="/orders/{order_id}")

    @task(1)
    def place_order(self) -> None:
        items = [
            {"product_id": self.rnd.randint(1, PRODUCTS), "quantity": self.rnd.randint(1, 3)}
            for _ in range(self.rnd.randint(1, 3))
        ]
        self.client.post("/orders", json={"user_id": self.user_id, "items": items}, name="/orders")

    @task(2)
    def pay_order(self) -> None:
        # A seeded order: paying it twice is the same charge (idempotency key).
        order_id = self.rnd.randint(1, ORDERS)
        self.client.post(f"/orders/{order_id}/pay", name="/orders/{order_id}/pay")


USERS = [Shopper]
