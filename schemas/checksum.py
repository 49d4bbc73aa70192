"""Kraken's book checksum (CRC32 over the top 10 levels), computed from fixed-point integers.

Part of the `kraken.book` / `kraken.level3` record contract: every record carries the checksum, the
pair's price and qty precision, so anyone can verify a book from the topic alone. Kraken's rule
(reference §4): render price and qty with exactly the pair's precision, drop '.', drop leading zeros,
concatenate the top 10 asks (low→high) then the top 10 bids (high→low), CRC32 as unsigned 32-bit.
Rendering a scaled integer with `str()` is exactly "fixed decimals without '.' and leading zeros",
so no float and no string padding is ever needed. Values of the float round-tripped captures (`4.0`,
`0.001`) are re-scaled to the pair precision by `to_fixed`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

CHECKSUM_DEPTH = 10


def to_fixed(text: str, precision: int) -> int:
    """Decimal text → integer in units of 10**-precision, exactly (ValueError on bad text or excess digits).

    Accepts what Kraken sends: optional sign, digits, optional '.', digits. Trailing zeros beyond the
    precision are allowed (`"4.000000000"` at 8); other excess digits are an error, never rounded.
    """
    if not text.isascii():  # str.isdigit() would take other scripts' digits ("٣")
        raise ValueError(f"not a decimal: {text!r}")
    neg = text.startswith("-")
    body = text[1:] if neg else text
    whole, dot, frac = body.partition(".")
    if not (whole.isdigit() or (dot and whole == "")) or (dot and frac and not frac.isdigit()):
        if "e" in body.lower():
            return _from_exponent(text, precision)
        raise ValueError(f"not a decimal: {text!r}")
    if len(frac) > precision:
        extra = frac[precision:]
        if extra.strip("0"):
            raise ValueError(f"{text!r} has more than {precision} decimals")
        frac = frac[:precision]
    value = int((whole or "0") + frac.ljust(precision, "0"))
    return -value if neg else value


def _from_exponent(text: str, precision: int) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        scaled = Decimal(text).scaleb(precision)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {text!r}") from None
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {precision} decimals")
    return int(scaled)


def fixed_to_text(value: int, precision: int) -> str:
    """Scaled integer → decimal text with exactly `precision` decimals (the inverse of `to_fixed`)."""
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(precision + 1, "0")
    if precision == 0:
        return sign + digits
    return f"{sign}{digits[:-precision]}.{digits[-precision:]}"


def checksum_string(asks: Iterable[tuple[int, int]], bids: Iterable[tuple[int, int]]) -> str:
    """The string Kraken hashes, from (price, qty) fixed-point pairs already in checksum order.

    `asks` best (lowest) first, `bids` best (highest) first; only the first 10 of each are used. For
    level3 pass one pair per order in queue order, level by level, over the top 10 levels.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for i, (price, qty) in enumerate(side):
            if i == CHECKSUM_DEPTH:
                break
            parts.append(str(price))
            parts.append(str(qty))
    return "".join(parts)


def crc32(text: str) -> int:
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF


def l2_checksum(asks: Iterable[tuple[int, int]], bids: Iterable[tuple[int, int]]) -> int:
    """CRC32 of an L2 book: top 10 asks low→high then top 10 bids high→low (fixed-point pairs)."""
    return crc32(checksum_string(asks, bids))


def l3_checksum(
    ask_levels: Iterable[Iterable[tuple[int, int]]], bid_levels: Iterable[Iterable[tuple[int, int]]]
) -> int:
    """CRC32 of an L3 book: each of the top 10 levels per side contributes every order in queue order."""
    parts: list[str] = []
    for levels in (ask_levels, bid_levels):
        for i, orders in enumerate(levels):
            if i == CHECKSUM_DEPTH:
                break
            for price, qty in orders:
                parts.append(str(price))
                parts.append(str(qty))
    return crc32("".join(parts))
