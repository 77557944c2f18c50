"""What fulfillment's routes depend on, as typed aliases: its settings, its Dapr client
and its fault flags. create_app (main.py) passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

from typing import Annotated

from fastapi import Depends

from fulfillment.settings import FulfillmentSettings
from orderflow_common.deps import DaprDep, Provided
from orderflow_common.faults import FaultsDep

__all__ = ["DaprDep", "FaultsDep", "SettingsDep", "get_settings"]

get_settings = Provided[FulfillmentSettings]()
SettingsDep = Annotated[FulfillmentSettings, Depends(get_settings)]
