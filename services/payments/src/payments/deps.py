"""What payments' routes depend on, as typed aliases: its settings, its Dapr client,
its fault flags, and what it keeps per process. create_app (main.py) passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

from typing import Annotated

from fastapi import Depends

from orderflow_common.counts import RecentCounts
from orderflow_common.deps import DaprDep, Provided
from orderflow_common.faults import FaultsDep
from payments.settings import PaymentsSettings

__all__ = ["AttemptsDep", "DaprDep", "FaultsDep", "SettingsDep", "get_attempts", "get_settings"]

get_settings = Provided[PaymentsSettings]()
SettingsDep = Annotated[PaymentsSettings, Depends(get_settings)]

# How many charge attempts reached this process, per recent order: what a resiliency
# demo or test counts.
get_attempts = Provided[RecentCounts]()
AttemptsDep = Annotated[RecentCounts, Depends(get_attempts)]
