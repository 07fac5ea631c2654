"""Frozen records as pandas data frames: what every ``to_pandas()`` of the notebook API uses.

One row per record, one column per field; a component is written by its name
(``9.9``), other values are kept as they are (tuples stay tuples). pandas is
imported on first use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def records_frame(records: Sequence[Any], columns: Sequence[str] = ()) -> pd.DataFrame:
    """Dataclass records as a data frame; ``columns`` name an empty one (and order a full one)."""
    import pandas as pd

    rows = [{f.name: _plain(getattr(r, f.name)) for f in dataclasses.fields(r)} for r in records]
    if not rows:
        return pd.DataFrame(columns=list(columns))
    return pd.DataFrame(rows, columns=list(columns) or None)


def _plain(value: Any) -> Any:
    return value.name if hasattr(value, "kind") and hasattr(value, "name") else value
