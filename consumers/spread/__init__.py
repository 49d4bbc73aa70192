"""Spread service: bid/ask spread statistics per interval from kraken.ticker or kracked.book.top."""
