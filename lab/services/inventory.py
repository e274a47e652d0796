"""inventory: the lab's second service (inventory/app.py), with its own database.

One uvicorn process. Its data lives in the lab's PostgreSQL, in a database of
its own (`inventory`, created by the service at start-up): two services, two
databases, one network between them that Toxiproxy can break
(faults/microservice_cascade.py).
"""

from __future__ import annotations

from lab.services._uvicorn import UvicornApp
from lab.services.postgres import direct_url

__all__ = ["DATABASE", "SERVICE", "Inventory"]

APP = "inventory.app:app"
DATABASE = "inventory"


class Inventory(UvicornApp):
    name = "inventory"
    rank = 35  # after PostgreSQL, which holds its database
    requires = ("toxiproxy", "postgres")
    app = APP
    link = "inventory"

    def app_env(self) -> dict[str, str]:
        return {"INVENTORY_DATABASE_URL": direct_url(DATABASE)}


SERVICE = Inventory()
