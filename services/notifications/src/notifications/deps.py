"""What notifications' routes depend on, as typed aliases: its settings, its Dapr client,
its fault flags, and what it keeps per process. create_app (main.py) passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

from typing import Annotated

from fastapi import Depends

from notifications.settings import NotificationsSettings
from orderflow_common.counts import RecentCounts
from orderflow_common.deps import DaprDep, Provided
from orderflow_common.faults import FaultsDep

__all__ = ["DaprDep", "DeliveriesDep", "FaultsDep", "SettingsDep", "get_deliveries", "get_settings"]

get_settings = Provided[NotificationsSettings]()
SettingsDep = Annotated[NotificationsSettings, Depends(get_settings)]

# Deliveries of each recent event to this replica, so a dead letter can say how many
# attempts it took: what the resiliency demo and tests read.
get_deliveries = Provided[RecentCounts]()
DeliveriesDep = Annotated[RecentCounts, Depends(get_deliveries)]
