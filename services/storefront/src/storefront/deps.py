"""What storefront's routes depend on, as typed aliases: its settings, its Dapr client
and its fault flags. create_app (main.py) passes each value in.
https://fastapi.tiangolo.com/tutorial/dependencies/#share-annotated-dependencies"""

from typing import Annotated

from fastapi import Depends

from orderflow_common.deps import DaprDep, Provided
from orderflow_common.faults import FaultsDep
from storefront.settings import StorefrontSettings

__all__ = ["DaprDep", "FaultsDep", "SettingsDep", "get_settings"]

get_settings = Provided[StorefrontSettings]()
SettingsDep = Annotated[StorefrontSettings, Depends(get_settings)]
