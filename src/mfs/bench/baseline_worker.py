"""The benchmark's baseline: the design this store replaced — a fresh interpreter per symbol, the
``ta`` package and row-by-row executemany.

Run as a script, one fresh interpreter per symbol — ``python baseline_worker.py URL SYMBOL TABLE`` —
it imports pandas, SQLAlchemy, psycopg2 and ``ta``, reads the symbol's hourly bars, computes the
same indicators with ``ta``, and writes them to TABLE with row-by-row ``executemany`` upserts.
It is deliberately NOT the project's code path: it exists only to be measured against. ``ta``
comes with the ``bench`` extra (``pip install 'mfs[bench]'``).
"""

import sys

import numpy as np
import pandas as pd
import psycopg2
import sqlalchemy
import ta

from mfs.features import definitions
from mfs.market import NY


def indicators(df: pd.DataFrame) -> pd.DataFrame:
    c, h, lo, v = df["close"], df["high"], df["low"], df["volume"].astype(float)
    out = pd.DataFrame(index=df.index)
    out["return_1"], out["return_5"], out["return_20"] = c.pct_change(1), c.pct_change(5), c.pct_change(20)
    out["log_return_1"] = np.log(c / c.shift(1))
    for n in (5, 10, 20, 50, 200):
        out[f"sma_{n}"] = ta.trend.sma_indicator(c, n)
    out["ema_12"], out["ema_26"] = ta.trend.ema_indicator(c, 12), ta.trend.ema_indicator(c, 26)
    macd = ta.trend.MACD(c)
    out["macd"], out["macd_signal"], out["macd_hist"] = macd.macd(), macd.macd_signal(), macd.macd_diff()
    out["rsi_14"] = ta.momentum.rsi(c, 14)
    bb = ta.volatility.BollingerBands(c, 20, 2)
    out["bb_upper"], out["bb_lower"] = bb.bollinger_hband(), bb.bollinger_lband()
    out["bb_width"], out["bb_pctb"] = bb.bollinger_wband(), bb.bollinger_pband()
    out["atr_14"] = ta.volatility.average_true_range(h, lo, c, 14)
    out["natr_14"] = out["atr_14"] / c * 100
    adx = ta.trend.ADXIndicator(h, lo, c, 14)
    out["adx_14"], out["plus_di_14"], out["minus_di_14"] = adx.adx(), adx.adx_pos(), adx.adx_neg()
    st = ta.momentum.StochasticOscillator(h, lo, c, 14, 3)
    out["stoch_k"], out["stoch_d"] = st.stoch(), st.stoch_signal()
    out["willr_14"] = ta.momentum.williams_r(h, lo, c, 14)
    out["cci_20"] = ta.trend.cci(h, lo, c, 20)
    out["obv"] = ta.volume.on_balance_volume(c, v)
    out["mfi_14"] = ta.volume.money_flow_index(h, lo, c, v, 14)
    out["vwap_20"] = ta.volume.volume_weighted_average_price(h, lo, c, v, 20)
    out["roc_10"] = ta.momentum.roc(c, 10)
    out["volatility_20"] = out["log_return_1"].rolling(20).std()
    out["volume_sma_20"] = v.rolling(20).mean()
    out["volume_ratio_20"] = v / out["volume_sma_20"]
    out["range_pct"] = (h - lo) / c
    ny = df["ts"].dt.tz_convert(NY)
    out["hour_et"], out["dow_et"] = ny.dt.hour.astype(float), ny.dt.dayofweek.astype(float)
    return out.replace([np.inf, -np.inf], np.nan)


def main(url: str, symbol: str, table: str) -> None:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    df = pd.read_sql(
        sqlalchemy.text(
            "SELECT ts, open, high, low, close, volume FROM market_data"
            " WHERE symbol = :s AND interval = '1h' ORDER BY ts"
        ),
        engine,
        params={"s": symbol},
    )
    engine.dispose()
    conn = psycopg2.connect(url)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    feats = indicators(df)
    columns = definitions.load().names  # the same columns as our features table: the same rows written
    cols = ", ".join(columns)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    stmt = (
        f"INSERT INTO {table} (symbol, interval, ts, {cols}) VALUES (%s, '1h', %s, {', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (symbol, interval, ts) DO UPDATE SET {sets}"
    )
    rows = [
        (symbol, ts.to_pydatetime(), *[None if pd.isna(x) else float(x) for x in values])
        for ts, values in zip(df["ts"], feats[columns].itertuples(index=False, name=None), strict=False)
    ]
    with conn.cursor() as cur:
        cur.executemany(stmt, rows)  # row by row: the baseline's write path
    conn.commit()
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
