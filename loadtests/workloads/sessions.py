"""Logged-in shoppers: log in once, then ask who they are, as every page of a shop does.

Each request is sent on a connection of its own (`Connection: close`), as a load
balancer in front of several servers spreads one browser's requests over them:
with gunicorn's workers sharing one socket, the kernel hands each new connection
to either worker. A kept-alive connection would pin a client to one worker and
hide what several servers do.

Every failure here is a logged-in user told they are not (401): the request is
marked failed, and the shopper logs in again, as a browser sent back to the
login page would (the 401 cleared its cookie). The client's cookie jar keeps the
session cookie, as a browser does.
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Shopper"]

# loadtests and target_app share the seed's constants by value, not by import.
SEED_PASSWORD = "shop-password"  # target_app/passwords.py
SEEDED_USERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 10, 10)  # target_app/seed.py
CLOSE = {"Connection": "close"}


class Shopper(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0.05")))

    def on_start(self) -> None:
        self.log_in()

    def log_in(self) -> None:
        email = f"user{random.randint(1, SEEDED_USERS)}@shop.test"
        with self.client.post(
            "/sessions", json={"email": email, "password": SEED_PASSWORD}, headers=CLOSE,
            name="/sessions", catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code != 201:
                response.failure(f"log-in refused: {response.status_code} {response.text[:200]}")

    @task
    def who_am_i(self) -> None:
        with self.client.get(
            "/sessions/me", headers=CLOSE, name="/sessions/me", catch_response=True
        ) as response:
            if response.status_code == 200:
                return
            response.failure(f"{response.status_code}: {response.text[:200]}")
        if response.status_code == 401:
            self.log_in()


USERS = [Shopper]
