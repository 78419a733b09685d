"""Pure computations on pandas objects for the margin-trading (融资融券) read-outs.

No database, files, network or Telegram here: every function takes pandas Series/DataFrames
(indexed by a sorted ``DatetimeIndex`` named ``trade_date`` unless its docstring says otherwise)
and returns floats, bools, Series or DataFrames. Money is in 元; percentages are percent numbers
(12.5 means 12.5%). Each function's docstring states its formula and units.

Modules
-------
balance
    量: change and % change over N days, pace z-score and class, turning points of the 20-day
    change, percentile within the trailing years, rolling quantile bands.
ratio
    两融交易占比 = (融资买入额 + 融券卖出额) / A股成交额, moving average, crowding run and warning,
    deleveraging.
sectors
    质: Shenwan level-1 sector balances, shares, N-day table, HHI and top-5 concentration,
    stability (coefficient of variation), bottoming sectors (money ahead of price).
stocks
    Per-stock 融资余额 spikes (z-score of the 5-day change) and rank.
shorts
    融券 structure: shares of 融券余额 in ETFs, CSI 300 constituents and the rest.
amplification
    放大效应: realized volatility and its latest 60-day correlation with the ratio.
"""
