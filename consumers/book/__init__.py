"""Order-book service: rebuilds L2/L3 books from kraken.book / kraken.level3 and verifies checksums."""
