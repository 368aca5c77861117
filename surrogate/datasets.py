"""Real space-time data sets bundled offline (libpysal's wheel ships them): a map and a long table each.

- :func:`nc_sids` -- North Carolina SIDS, 100 counties, two periods (1974-78, 1979-84): sudden infant
  deaths ``SID``, live births ``BIR`` and the share of non-white births ``NWPROP``.
- :func:`stl_homicides` -- St. Louis region, 78 counties, three periods (1979-84, 1984-88, 1988-93):
  homicides ``HC``, population ``PO`` and resource deprivation ``RDAC``.

Each returns ``(map GeoDataFrame, long DataFrame)``: one row per county and period, with a numeric
``period`` column (1, 2, 3), the period's years as text and ``E``, the expected count
at the overall rate of every county and period (internal standardisation).
"""

from __future__ import annotations

from surrogate.errors import SurrogateError


def _map(name: str):
    try:
        import geopandas as gpd
        from libpysal import examples
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise SurrogateError(f"the bundled maps need geopandas and libpysal: {exc}") from None
    return gpd.read_file(examples.get_path(name))


def _long(gdf, id_column: str, periods: list[tuple[int, str, dict]]):
    import pandas as pd

    frames = []
    for period, years, columns in periods:
        frame = pd.DataFrame({id_column: gdf[id_column].astype(str).to_numpy(), "period": period, "years": years})
        for new, old in columns.items():
            frame[new] = gdf[old].to_numpy() if isinstance(old, str) else old(gdf)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def nc_sids():
    """(map, long table) of North Carolina SIDS: columns FIPS, period (1, 2), years, SID, BIR, NWPROP, E."""
    gdf = _map("sids2.shp")
    gdf["FIPS"] = gdf["FIPS"].astype(str)
    table = _long(gdf, "FIPS", [(1, "1974-78", {"SID": "SID74", "BIR": "BIR74", "NWPROP": lambda g: g["NWBIR74"] / g["BIR74"]}),
                                (2, "1979-84", {"SID": "SID79", "BIR": "BIR79", "NWPROP": lambda g: g["NWBIR79"] / g["BIR79"]})])  # fmt: skip
    table["E"] = table["BIR"].astype(float) * float(table["SID"].sum()) / float(table["BIR"].sum())
    return gdf[["FIPS", "NAME", "geometry"]], table


def stl_homicides():
    """(map, long table) of St. Louis homicides: columns FIPS, period (1, 2, 3), years, HC, PO, RDAC, E."""
    gdf = _map("stl_hom.shp")
    gdf["FIPS"] = gdf["FIPS"].astype(str)
    table = _long(gdf, "FIPS", [(1, "1979-84", {"HC": "HC7984", "PO": "PO7984", "RDAC": "RDAC80"}),
                                (2, "1984-88", {"HC": "HC8488", "PO": "PO8488", "RDAC": "RDAC85"}),
                                (3, "1988-93", {"HC": "HC8893", "PO": "PO8893", "RDAC": "RDAC90"})])  # fmt: skip
    table["E"] = table["PO"].astype(float) * float(table["HC"].sum()) / float(table["PO"].sum())  # int32 columns: no overflow
    return gdf[["FIPS", "NAME", "geometry"]], table
