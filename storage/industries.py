"""Shenwan (申万) level-1 industries of the 2021 scheme: code, Chinese and English name, index symbol."""

from __future__ import annotations

from typing import NamedTuple


class Industry(NamedTuple):
    sw_l1_code: str
    name_zh: str
    name_en: str
    index_symbol: str


SW_L1_2021: tuple[Industry, ...] = (
    Industry("110000", "农林牧渔", "Agriculture", "801010"),
    Industry("220000", "基础化工", "Basic Chemicals", "801030"),
    Industry("230000", "钢铁", "Steel", "801040"),
    Industry("240000", "有色金属", "Non-ferrous Metals", "801050"),
    Industry("270000", "电子", "Electronics", "801080"),
    Industry("280000", "汽车", "Autos", "801880"),
    Industry("330000", "家用电器", "Home Appliances", "801110"),
    Industry("340000", "食品饮料", "Food & Beverage", "801120"),
    Industry("350000", "纺织服饰", "Textiles & Apparel", "801130"),
    Industry("360000", "轻工制造", "Light Industry", "801140"),
    Industry("370000", "医药生物", "Pharma & Biotech", "801150"),
    Industry("410000", "公用事业", "Utilities", "801160"),
    Industry("420000", "交通运输", "Transportation", "801170"),
    Industry("430000", "房地产", "Real Estate", "801180"),
    Industry("450000", "商贸零售", "Retail", "801200"),
    Industry("460000", "社会服务", "Social Services", "801210"),
    Industry("480000", "银行", "Banks", "801780"),
    Industry("490000", "非银金融", "Non-bank Finance", "801790"),
    Industry("510000", "综合", "Conglomerates", "801230"),
    Industry("610000", "建筑材料", "Building Materials", "801710"),
    Industry("620000", "建筑装饰", "Construction", "801720"),
    Industry("630000", "电力设备", "Power Equipment", "801730"),
    Industry("640000", "机械设备", "Machinery", "801890"),
    Industry("650000", "国防军工", "Defense", "801740"),
    Industry("710000", "计算机", "Computers", "801750"),
    Industry("720000", "传媒", "Media", "801760"),
    Industry("730000", "通信", "Telecom", "801770"),
    Industry("740000", "煤炭", "Coal", "801950"),
    Industry("750000", "石油石化", "Oil & Petrochemicals", "801960"),
    Industry("760000", "环保", "Environmental", "801970"),
    Industry("770000", "美容护理", "Beauty Care", "801980"),
)
# Level-1 industries of the 2014 scheme that the 2021 one dropped: classes in force before 2021-07-30
# still carry them (采掘 became 煤炭 and 石油石化). Named in the reports; their index is not fetched.
SW_L1_RETIRED: tuple[Industry, ...] = (
    Industry("210000", "采掘", "Mining", "801020"),
)


def industry_name_rows() -> list[dict[str, str]]:
    """IndustryName rows: the 31 level-1 industries of the 2021 scheme and the retired ones."""
    return [{"sw_l1_code": i.sw_l1_code, "name_zh": i.name_zh, "name_en": i.name_en, "index_symbol": i.index_symbol}
            for i in (*SW_L1_2021, *SW_L1_RETIRED)]


def level1_code(sw_code: str) -> str:
    """Level-1 code of any Shenwan code: first two digits + "0000" (e.g. 480301 -> 480000)."""
    return sw_code.strip()[:2] + "0000"


def is_fund_code(code: str) -> bool:
    """Funds and ETFs in margin detail: SSE 5xxxxx, SZSE 15xxxx/16xxxx/18xxxx. Kept, but not in sectors."""
    return code.startswith("5") or code[:2] in ("15", "16", "18")


def exchange_of(code: str) -> str:
    """Exchange of an A-share or fund code: 6/5/9 -> SSE, 0/1/2/3 -> SZSE, 4/8/92 -> BSE."""
    if code.startswith("92") or code[0] in "48":
        return "BSE"
    if code[0] in "659":
        return "SSE"
    return "SZSE"
