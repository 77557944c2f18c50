"""What inventory's routes depend on, as typed aliases: its settings, its Dapr client,
its fault flags, and what it keeps per process. create_app (main.py) passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

import asyncio
from typing import Annotated

from fastapi import Depends

from inventory.settings import InventorySettings
from orderflow_common.deps import DaprDep, Provided
from orderflow_common.faults import FaultsDep

__all__ = ["DaprDep", "FaultsDep", "SettingsDep", "TurnsDep", "get_settings", "get_turns"]

get_settings = Provided[InventorySettings]()
SettingsDep = Annotated[InventorySettings, Depends(get_settings)]

# One change of the stock document at a time in this replica (stock.py).
get_turns = Provided[asyncio.Lock]()
TurnsDep = Annotated[asyncio.Lock, Depends(get_turns)]
